"""Byte-level instruction tokenizer: fully offline, no vocabulary file.

Ids 0..255 are the UTF-8 bytes of the instruction, followed by one `EOS` token; rows shorter than
the longest in the batch are right-padded with `PAD` (attention mask 0). Instructions longer than
`max_len - 1` bytes are silently truncated (EOS is always kept), possibly mid-way through a
multi-byte character; the policy only sees bytes, so that is harmless.
"""

from __future__ import annotations

import numpy as np
import torch

PAD = 256
EOS = 257
VOCAB_SIZE = 258


class ByteTokenizer:
    pad_id = PAD
    eos_id = EOS
    vocab_size = VOCAB_SIZE

    def encode(self, texts: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (input_ids [B, T] int64, attention_mask [B, T] int64), T = longest row (<= max_len).

        Every row ends with EOS, so an empty instruction still gives one real token.
        """
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        rows = [text.encode("utf-8")[: max_len - 1] for text in texts]
        lengths = np.fromiter((len(r) + 1 for r in rows), dtype=np.int64, count=len(rows))
        width = int(lengths.max()) if len(rows) else 1
        columns = np.arange(width)
        ids = np.full((len(rows), width), PAD, dtype=np.int64)
        if rows:
            flat = np.frombuffer(b"".join(rows), dtype=np.uint8)
            ids[columns < (lengths - 1)[:, None]] = flat  # the bytes, row by row
            ids[np.arange(len(rows)), lengths - 1] = EOS
        mask = (columns < lengths[:, None]).astype(np.int64)
        return torch.from_numpy(ids), torch.from_numpy(mask)

    def lengths(self, texts: list[str], max_len: int) -> np.ndarray:
        """The number of real tokens (bytes kept + EOS) `encode` gives each text: a batch of
        texts is as wide as its longest, and padded unless all are equally long."""
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        return np.array([min(len(text.encode("utf-8")), max_len - 1) + 1 for text in texts], dtype=np.int64)

    def decode(self, ids: torch.Tensor) -> str:
        """One row of ids -> text (up to EOS; padding and invalid bytes are dropped)."""
        out = bytearray()
        for token in ids.tolist():
            if token == EOS:
                break
            if token < 256:
                out.append(token)
        return out.decode("utf-8", errors="ignore")

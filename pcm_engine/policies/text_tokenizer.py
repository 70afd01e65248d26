"""Byte-level instruction tokenizer: fully offline, no vocabulary file.

Ids 0..255 are the UTF-8 bytes of the instruction, followed by one `EOS` token; rows shorter than
the longest in the batch are right-padded with `PAD` (attention mask 0). Instructions longer than
`max_len - 1` bytes are silently truncated (EOS is always kept), possibly mid-way through a
multi-byte character; the policy only sees bytes, so that is harmless.
"""

from __future__ import annotations

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
        rows = [list(text.encode("utf-8")[: max_len - 1]) + [EOS] for text in texts]
        width = max((len(r) for r in rows), default=1)
        ids = torch.full((len(rows), width), PAD, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return ids, mask

    def decode(self, ids: torch.Tensor) -> str:
        """One row of ids -> text (up to EOS; padding and invalid bytes are dropped)."""
        out = bytearray()
        for token in ids.tolist():
            if token == EOS:
                break
            if token < 256:
                out.append(token)
        return out.decode("utf-8", errors="ignore")

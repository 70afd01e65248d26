"""VLA chunk policies: a transformers VLM with parallel action decoding (see vla.py)."""

from pcm_engine.policies.action_tokenizer import ActionTokenizer
from pcm_engine.policies.text_tokenizer import ByteTokenizer
from pcm_engine.policies.vla import PolicyInputs, VLAPolicy

__all__ = ["ActionTokenizer", "ByteTokenizer", "PolicyInputs", "VLAPolicy"]

"""Attention: one block for MHA, GQA and MQA, with an implementation per execution mode."""

from tttv2.blocks.building_blocks.attention import implementations as _implementations  # noqa: F401  (registers)
from tttv2.blocks.building_blocks.attention.attention import (
    Attention,
    GroupedQueryAttention,
    MultiHeadAttention,
)
from tttv2.blocks.building_blocks.attention.qk_norm import HeadRMSNorm

__all__ = ["Attention", "GroupedQueryAttention", "HeadRMSNorm", "MultiHeadAttention"]

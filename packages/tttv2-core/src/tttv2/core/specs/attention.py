"""Attention spec: MHA, GQA and MQA through ``num_kv_heads``."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tttv2.core.specs.base import ModuleSpec
from tttv2.core.specs.rope import RopeSpec


@dataclass(frozen=True)
class AttentionSpec(ModuleSpec):
    """Causal self-attention.

    ``num_kv_heads`` defaults to ``num_heads`` (MHA); fewer KV heads give GQA, one gives
    MQA. ``head_dim`` defaults to ``hidden_dim // num_heads`` but may be set freely.
    ``scale`` multiplies ``q @ k^T``; ``None`` means ``1/sqrt(head_dim)``. ``sliding_window``
    limits each query to the last ``sliding_window`` keys (itself included).
    ``logit_softcap`` applies ``cap * tanh(scores / cap)`` before the softmax.
    ``qk_norm`` applies a per-head RMSNorm (eps ``qk_norm_eps``) to q and k before RoPE;
    ``qk_norm_unit_offset`` scales it by ``1 + weight`` instead of ``weight`` (Gemma 3's
    ``q_norm``/``k_norm``, whose checkpoints store ``weight - 1``), computed in fp32 so a
    half-precision model keeps the offset weight's precision.
    """

    kind = "attention"

    hidden_dim: int
    num_heads: int
    num_kv_heads: int | None = None
    head_dim: int | None = None
    qkv_bias: bool = False
    out_bias: bool = False
    qk_norm: bool = False
    qk_norm_eps: float = 1e-6
    sliding_window: int | None = None
    logit_softcap: float | None = None
    scale: float | None = None
    max_seq_len: int = 4096
    rope: RopeSpec | None = None
    qk_norm_unit_offset: bool = False

    def validate(self) -> None:
        self._positive("hidden_dim", "num_heads", "max_seq_len")
        if self.num_kv_heads is None:
            self._set("num_kv_heads", self.num_heads)
        self._positive("num_kv_heads")
        if self.num_heads % self.num_kv_heads:  # type: ignore[operator]  # set above
            self._fail("num_kv_heads", f"a divisor of num_heads ({self.num_heads})")
        if self.head_dim is None:
            if self.hidden_dim % self.num_heads:
                self._fail(
                    "num_heads",
                    f"a divisor of hidden_dim ({self.hidden_dim}), or set head_dim explicitly",
                )
            self._set("head_dim", self.hidden_dim // self.num_heads)
        self._positive("head_dim")
        self._bool("qkv_bias", "out_bias", "qk_norm", "qk_norm_unit_offset")
        if self.qk_norm_unit_offset and not self.qk_norm:
            self._fail("qk_norm_unit_offset", "False unless qk_norm is True")
        self._positive_float("qk_norm_eps")
        if self.sliding_window is not None:
            self._positive("sliding_window")
            if self.sliding_window > self.max_seq_len:
                self._fail("sliding_window", f"<= max_seq_len ({self.max_seq_len}) or None")
        self._positive_float("logit_softcap", "scale", allow_none=True)
        if self.rope is not None:
            if not isinstance(self.rope, RopeSpec):
                self._fail("rope", "a RopeSpec or None")
            if self.rope.head_dim != self.head_dim:
                self._fail("rope", f"a RopeSpec with head_dim == {self.head_dim}")

    @property
    def softmax_scale(self) -> float:
        """The factor applied to ``q @ k^T``."""
        return self.scale if self.scale is not None else 1.0 / math.sqrt(self.head_dim)  # type: ignore[arg-type]  # validate() set it

    @property
    def group_size(self) -> int:
        """Query heads per KV head (1 for MHA)."""
        return self.num_heads // self.num_kv_heads  # type: ignore[operator]

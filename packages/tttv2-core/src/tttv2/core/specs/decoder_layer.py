"""Decoder layer spec: attention + feed-forward (or MoE) with their norms and residuals."""

from __future__ import annotations

from dataclasses import dataclass

from tttv2.core.specs.attention import AttentionSpec
from tttv2.core.specs.base import ModuleSpec
from tttv2.core.specs.feed_forward import FeedForwardSpec
from tttv2.core.specs.moe import MoESpec
from tttv2.core.specs.normalization import NormSpec


@dataclass(frozen=True)
class DecoderLayerSpec(ModuleSpec):
    """Sequential (``parallel=False``)::

        h = x + post_attn_norm(attn(attn_norm(x)))
        y = h + post_ffn_norm(ffn(ffn_norm(h)))

    Parallel (GPT-J / Phi-2, ``parallel=True``, ``ffn_norm`` None means it shares
    ``attn_norm``)::

        y = x + attn(attn_norm(x)) + ffn(ffn_norm(x))

    ``post_attn_norm`` / ``post_ffn_norm`` are the sandwich norms of Gemma 2/3.
    """

    kind = "decoder_layer"

    attention: AttentionSpec
    ffn: FeedForwardSpec | MoESpec
    attn_norm: NormSpec
    ffn_norm: NormSpec | None = None
    post_attn_norm: NormSpec | None = None
    post_ffn_norm: NormSpec | None = None
    parallel: bool = False

    def validate(self) -> None:
        if not isinstance(self.attention, AttentionSpec):
            self._fail("attention", "an AttentionSpec")
        if not isinstance(self.ffn, (FeedForwardSpec, MoESpec)):
            self._fail("ffn", "a FeedForwardSpec or MoESpec")
        self._bool("parallel")
        hidden = self.attention.hidden_dim
        if self.ffn.hidden_dim != hidden:
            self._fail("ffn", f"hidden_dim == attention.hidden_dim ({hidden})")
        for f in ("attn_norm", "ffn_norm", "post_attn_norm", "post_ffn_norm"):
            v = getattr(self, f)
            if v is None and f != "attn_norm":
                continue
            if not isinstance(v, NormSpec) or v.dim != hidden:
                self._fail(f, f"a NormSpec with dim == attention.hidden_dim ({hidden})")
        if self.ffn_norm is None and not self.parallel:
            self._fail("ffn_norm", "a NormSpec (only parallel layers may share attn_norm)")
        if self.parallel and (self.post_attn_norm or self.post_ffn_norm):
            self._fail("parallel", "False when sandwich (post) norms are used")

    @property
    def hidden_dim(self) -> int:
        return self.attention.hidden_dim

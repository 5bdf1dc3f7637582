"""Whole-model spec: embedding, decoder layers, final norm, LM head."""

from __future__ import annotations

from dataclasses import dataclass

from tttv2.core.specs.base import ModuleSpec
from tttv2.core.specs.decoder_layer import DecoderLayerSpec
from tttv2.core.specs.embedding import EmbeddingSpec
from tttv2.core.specs.lm_head import LMHeadSpec
from tttv2.core.specs.normalization import NormSpec


@dataclass(frozen=True)
class ModelSpec(ModuleSpec):
    """A decoder-only transformer. ``layers`` holds one spec per layer, so local
    (sliding-window) and global layers can alternate. ``max_seq_len`` may not exceed any
    layer's ``attention.max_seq_len``, nor the embedding's learned ``max_positions``
    when it has them (GPT-2: 1024)."""

    kind = "model"

    embedding: EmbeddingSpec
    layers: tuple[DecoderLayerSpec, ...]
    final_norm: NormSpec
    lm_head: LMHeadSpec
    max_seq_len: int = 4096

    def validate(self) -> None:
        self._positive("max_seq_len")
        if not isinstance(self.embedding, EmbeddingSpec):
            self._fail("embedding", "an EmbeddingSpec")
        if not isinstance(self.layers, (str, bytes, dict, ModuleSpec)):
            try:
                self._set("layers", tuple(self.layers))
            except TypeError:  # not iterable: rejected just below
                pass
        if (
            not isinstance(self.layers, tuple)
            or not self.layers
            or not all(isinstance(x, DecoderLayerSpec) for x in self.layers)
        ):
            self._fail("layers", "a non-empty sequence of DecoderLayerSpec")
        hidden = self.embedding.hidden_dim
        for i, layer in enumerate(self.layers):
            if layer.hidden_dim != hidden:
                self._fail(
                    "layers", f"layer {i} with hidden_dim == embedding.hidden_dim ({hidden})"
                )
            if layer.attention.max_seq_len < self.max_seq_len:
                self._fail(
                    "layers", f"layer {i} attention.max_seq_len >= max_seq_len ({self.max_seq_len})"
                )
        if not isinstance(self.final_norm, NormSpec) or self.final_norm.dim != hidden:
            self._fail("final_norm", f"a NormSpec with dim == embedding.hidden_dim ({hidden})")
        if not isinstance(self.lm_head, LMHeadSpec) or self.lm_head.hidden_dim != hidden:
            self._fail(
                "lm_head", f"an LMHeadSpec with hidden_dim == embedding.hidden_dim ({hidden})"
            )
        if self.lm_head.vocab_size != self.embedding.vocab_size and self.lm_head.tied:
            self._fail(
                "lm_head",
                f"vocab_size == embedding.vocab_size ({self.embedding.vocab_size}) when tied",
            )
        positions = self.embedding.max_positions
        if positions is not None and self.max_seq_len > positions:
            self._fail(
                "max_seq_len",
                f"<= embedding.max_positions ({positions}), the number of learned positions",
            )

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def hidden_dim(self) -> int:
        return self.embedding.hidden_dim

    @property
    def vocab_size(self) -> int:
        return self.lm_head.vocab_size

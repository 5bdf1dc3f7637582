"""The feed-forward half of a pre-norm decoder layer, composed from tttv2 blocks."""

from __future__ import annotations

import torch

from tttv2.blocks import FeedForward, RMSNorm
from tttv2.core.specs import FeedForwardSpec, NormSpec
from tttv2_model_example.numbers import ACTIVATION, NORM_EPS


def sublayer_specs(hidden_dim: int, intermediate_dim: int) -> tuple[NormSpec, FeedForwardSpec]:
    """The specs of the norm and the feed-forward block, with this model's numbers.

    The specs validate their fields: a non-positive size raises the spec's ``ValueError``
    naming the field."""
    norm = NormSpec(dim=hidden_dim, norm_type="rms", eps=NORM_EPS)
    ffn = FeedForwardSpec(
        hidden_dim=hidden_dim, intermediate_dim=intermediate_dim, activation=ACTIVATION, gated=True
    )
    return norm, ffn


class PreNormFeedForward(torch.nn.Module):
    """``x + ffn(ffn_norm(x))`` for ``x [..., hidden_dim]``.

    Parameters by their Hugging Face names: ``ffn_norm.weight``,
    ``ffn.{gate,up,down}_proj.weight``."""

    def __init__(self, hidden_dim: int, intermediate_dim: int, device=None) -> None:
        super().__init__()
        norm_spec, ffn_spec = sublayer_specs(hidden_dim, intermediate_dim)
        self.ffn_norm = RMSNorm(norm_spec, device=device)
        self.ffn = FeedForward(ffn_spec, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ffn(self.ffn_norm(x))

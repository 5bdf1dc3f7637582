"""The spec's attention math (scale, sliding window, soft-cap) bound to the device's kernels.

Execution-mode implementations hold one of these: it has no tensors, so building one per
mode costs nothing and weights stay on the module. Layouts here are token-major, as the
module produces them: ``q [..., S, H, D]``; the kernels want head-major.
"""

from __future__ import annotations

import torch

from tttv2.blocks.building_blocks.kv_cache import LayerKVCache
from tttv2.core.specs import AttentionSpec
from tttv2.hw import get_kernel


class AttentionKernels:
    def __init__(self, spec: AttentionSpec, device: torch.device | str | None) -> None:
        self.prefill_kernel = get_kernel("prefill_attention", device)
        self.decode_kernel = get_kernel("paged_decode_attention", device)
        self.sliding_window = spec.sliding_window
        self.options = {
            "scale": spec.softmax_scale,
            "sliding_window": spec.sliding_window,
            "softcap": spec.logit_softcap,
        }

    def causal(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``q [B, Sq, H, D]`` against ``k, v [B, Sk, Hkv, D]`` (``Sk >= Sq``; the queries are
        the last ``Sq`` of the ``Sk`` positions) -> ``[B, Sq, H, D]``."""
        out = self.prefill_kernel(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), **self.options
        )
        return out.transpose(1, 2)

    def cached(
        self, q: torch.Tensor, cache: LayerKVCache, block_table: torch.Tensor, total_len: int
    ) -> torch.Tensor:
        """One sequence's new tokens ``q [Sq, H, D]`` (the last ``Sq`` of its ``total_len``
        tokens, K/V already written) against its cached keys -> ``[Sq, H, D]``.

        With a sliding window only the keys some query can see are read."""
        first_query = total_len - q.shape[0]
        start = 0 if self.sliding_window is None else max(0, first_query - self.sliding_window + 1)
        k, v = cache.read(block_table, start, total_len)
        return self.causal(q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0))[0]

    def paged(
        self,
        q: torch.Tensor,
        cache: LayerKVCache,
        block_tables: torch.Tensor,
        seq_lens: torch.Tensor,
        max_seq_len: int,
    ) -> torch.Tensor:
        """One query per row ``q [N, H, D]``, row ``n`` at position ``seq_lens[n] - 1`` of the
        sequence owning ``block_tables[n]``, reading the paged cache -> ``[N, H, D]``."""
        return self.decode_kernel(
            q,
            cache.key,
            cache.value,
            block_tables,
            seq_lens,
            max_seq_len=max_seq_len,
            **self.options,
        )

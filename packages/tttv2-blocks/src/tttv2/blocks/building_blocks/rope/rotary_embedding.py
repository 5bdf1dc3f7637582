"""RotaryEmbedding: rotate queries and keys by their positions (RoPE).

Angles are ``position * inv_freq`` (see ``frequencies.py`` for every scaling rule); the
cos/sin tables hold ``cos(angle) * attention_scaling`` and ``sin(angle) *
attention_scaling`` computed in float32 and then cast to the dtype of q, exactly as Hugging
Face does. The rotation itself is tttv2-hw's ``apply_rotary`` kernel for q's device.

Tables: built once per (spec, device, dtype) and shared by every ``RotaryEmbedding`` with an
equal spec (a model's layers share one table). A table covers positions ``0..L-1``; it is
grown (to the next power of two) the first time a longer sequence is seen, so memory
follows the lengths actually used rather than ``max_position``.

How the tables depend on the current length ``seq_len`` (largest position + 1 in the
batch, the same quantity Hugging Face takes from ``max(position_ids) + 1``):

* ``longrope``: two tables; the short-factor one while ``seq_len <=
  original_max_position``, the long-factor one beyond. Both carry the same attention
  factor.
* ``dynamic``: up to ``max_position`` the default table. Beyond it the NTK base depends on
  ``seq_len`` itself, so cos/sin are computed for the requested positions directly
  (``T x rotary_dim/2`` work, no table), with the frequencies of that ``seq_len``. This is
  Hugging Face's rule during a generation, where the length only grows; Hugging Face
  additionally keeps the frequencies of the longest length seen until a sequence
  shorter than ``max_position`` arrives, a cache artefact this block does not copy: a batch
  always uses the frequencies of its own length.
* every other rule: one table, independent of ``seq_len``.

Keys already in the KV cache keep the rotation they were written with, as in Hugging Face.
"""

from __future__ import annotations

from typing import Any

import torch

from tttv2.blocks.building_blocks.rope.frequencies import rope_frequencies
from tttv2.core.specs import RopeSpec
from tttv2.hw import get_kernel

_MIN_TABLE = 256
_TABLES: dict[tuple[RopeSpec, str, torch.dtype, str], tuple[torch.Tensor, torch.Tensor]] = {}


def _angles_to_cos_sin(
    positions: torch.Tensor, inv_freq: torch.Tensor, scaling: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    angles = positions.float()[:, None] * inv_freq[None, :]
    return (angles.cos() * scaling).to(dtype), (angles.sin() * scaling).to(dtype)


class RotaryEmbedding(torch.nn.Module):
    """Rotary position embedding of ``spec`` (no parameters).

    ``apply(q [T, H, D], k [T, Hkv, D], positions [T] int64, seq_len=None)`` returns the
    rotated ``(q, k)`` in their dtypes. Pass ``seq_len`` (the longest sequence in the batch,
    e.g. ``meta.max_seq_len``) to avoid reading ``positions.max()`` back from the device.
    """

    def __init__(self, spec: RopeSpec, device: Any = None, execution_strategy: Any = None) -> None:
        super().__init__()
        if not isinstance(spec, RopeSpec):
            raise TypeError(f"RotaryEmbedding needs a RopeSpec, got {type(spec).__name__}")
        self.spec = spec
        self._kernels: dict[str, Any] = {}  # device type -> apply_rotary kernel

    # -- tables -----------------------------------------------------------------------
    def cos_sin(
        self,
        positions: torch.Tensor,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        seq_len: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``cos, sin`` of shape ``[T, rotary_dim/2]`` for ``positions [T]``."""
        device = positions.device if device is None else torch.device(device)
        positions = positions.to(device)
        if seq_len is None:
            seq_len = int(positions.max()) + 1 if positions.numel() else 0
        cos, sin, table = self._tables_for(positions, device, dtype, seq_len)
        return (cos[positions], sin[positions]) if table else (cos, sin)

    def cos_sin_into(
        self, positions: torch.Tensor, cos_out: torch.Tensor, sin_out: torch.Tensor, seq_len: int
    ) -> None:
        """Write ``cos_sin(positions, ..., seq_len)`` into ``cos_out`` and ``sin_out`` (``[T,
        rotary_dim/2]``, whose device and dtype are used): a decode step's row lookup with no
        intermediate tensors. ``positions`` must be on the outputs' device."""
        cos, sin, table = self._tables_for(positions, cos_out.device, cos_out.dtype, seq_len)
        if table:
            torch.index_select(cos, 0, positions, out=cos_out)
            torch.index_select(sin, 0, positions, out=sin_out)
        else:
            cos_out.copy_(cos)
            sin_out.copy_(sin)

    def _tables_for(
        self, positions: torch.Tensor, device: torch.device, dtype: torch.dtype, seq_len: int
    ) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """``(cos, sin, True)``: the tables to index by ``positions``; ``(cos, sin, False)``
        (dynamic scaling past ``max_position``): computed for exactly these positions."""
        spec = self.spec
        if spec.scaling == "dynamic" and seq_len > spec.max_position:
            inv_freq, scaling = rope_frequencies(spec, seq_len, device)
            return (*_angles_to_cos_sin(positions, inv_freq, scaling, dtype), False)
        use_long = spec.scaling == "longrope" and seq_len > spec.original_max_position  # type: ignore[operator]
        return (*self._table(device, dtype, "long" if use_long else "base", seq_len), True)

    def _table(
        self, device: torch.device, dtype: torch.dtype, regime: str, needed: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        key = (self.spec, str(device), dtype, regime)
        table = _TABLES.get(key)
        if table is not None and table[0].shape[0] >= needed:
            return table
        length = max(_MIN_TABLE, 1 << max(needed - 1, 0).bit_length())
        # the long regime is whatever Hugging Face computes for a length past the original
        regime_len = self.spec.original_max_position + 1 if regime == "long" else None  # type: ignore[operator]
        inv_freq, scaling = rope_frequencies(self.spec, regime_len, device)
        positions = torch.arange(length, dtype=torch.int64, device=device)
        table = _angles_to_cos_sin(positions, inv_freq, scaling, dtype)
        _TABLES[key] = table
        return table

    @staticmethod
    def clear_tables() -> None:
        """Drop every cached cos/sin table (they are rebuilt on demand)."""
        _TABLES.clear()

    # -- rotation ---------------------------------------------------------------------
    def apply(  # type: ignore[override]  # not nn.Module.apply(fn): a public name kept
        self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor, seq_len: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(q, "q")
        self._check(k, "k")
        if positions.dim() != 1 or positions.shape[0] != q.shape[0] or k.shape[0] != q.shape[0]:
            raise ValueError(
                f"RotaryEmbedding.apply: positions must be [T] with T == q.shape[0] == k.shape[0]; "
                f"got positions {tuple(positions.shape)}, q {tuple(q.shape)}, k {tuple(k.shape)}"
            )
        cos, sin = self.cos_sin(positions, q.device, q.dtype, seq_len)
        rotate = self._kernels.get(q.device.type)
        if rotate is None:
            rotate = self._kernels[q.device.type] = get_kernel("apply_rotary", q.device)
        interleaved = self.spec.interleaved
        return rotate(q, cos, sin, interleaved=interleaved), rotate(
            k, cos, sin, interleaved=interleaved
        )

    forward = apply

    def _check(self, x: torch.Tensor, name: str) -> None:
        if x.dim() != 3 or x.shape[-1] != self.spec.head_dim:
            raise ValueError(
                f"RotaryEmbedding.apply: {name} must be [T, heads, {self.spec.head_dim}], got {tuple(x.shape)}"
            )

    def extra_repr(self) -> str:
        s = self.spec
        return f"scaling={s.scaling!r}, head_dim={s.head_dim}, rotary_dim={s.rotary_dim}, interleaved={s.interleaved}"

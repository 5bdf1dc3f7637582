"""Placement.region: a rule's split and/or transpose said structurally (StoredRegion) picks
the same tensor as the rule's derive, whole or any rows of it (a rank's shard), from a
torch tensor and from safetensors' ``get_slice`` (which then reads only that range); a rule
with any other transform has no region (opaque); a plain rename needs none."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tttv2.blocks.weights import RenameRules, Split, StoredRegion, transpose


def rows(tensor: torch.Tensor) -> torch.Tensor:
    """An opaque transform (a reshape): no region can say it."""
    return tensor.reshape(-1, tensor.shape[-1])


RULES = RenameRules(
    [
        (r"qkv", Split(("q", "k", "v"), sizes=(8, 4, 4))),  # Phi-3 GQA: rows of unequal sizes
        (r"gate_up", Split(("gate", "up"))),  # equal halves of the rows
        (r"c_attn\.(weight|bias)", Split((r"q.\1", r"k.\1", r"v.\1"))),  # GPT-2 bias: 1-D
        (r"c_attn_t", Split(("qt", "kt", "vt")), transpose),  # GPT-2 Conv1D: [in, 3 * out]
        (r"c_fc", "up_t", transpose),
        (r"cols", Split(("left", "right"), dim=-1)),  # a split along the last dimension
        (r"stacked", Split(("e0", "e1")), rows),
        (r"plain", "renamed"),
    ]
)
STORED = {
    "qkv": torch.randn(16, 6),
    "gate_up": torch.randn(10, 6),
    "c_attn.weight": torch.randn(12, 5),
    "c_attn.bias": torch.randn(12),
    "c_attn_t": torch.randn(5, 12),
    "c_fc": torch.randn(6, 10),
    "cols": torch.randn(3, 8),
}


def _cuts(shape: tuple[int, ...]):
    """Every dimension's every contiguous range of length >= 1 (a rank's rows or columns)."""
    for dim, n in enumerate(shape):
        for start in range(n):
            for stop in range(start + 1, n + 1):
                yield dim, start, stop


@pytest.mark.parametrize("name", list(STORED))
def test_region_takes_what_derive_gives_whole_and_every_shard(name, tmp_path):
    stored = STORED[name]
    path = tmp_path / "x.safetensors"
    save_file({name: stored}, str(path))
    placements = RULES.placements(name)
    assert placements is not None
    with safe_open(str(path), framework="pt") as f:
        piece = f.get_slice(name)
        for p in placements:
            assert p.is_structural and p.region is not None, p
            want = p.tensor(stored)
            assert p.region.shape(tuple(stored.shape)) == tuple(want.shape)
            assert torch.equal(p.region.take(stored), want)
            assert torch.equal(p.region.take(piece), want)
            for dim, start, stop in _cuts(tuple(want.shape)):
                shard = want.narrow(dim, start, stop - start)
                assert torch.equal(p.region.take(piece, (dim, start, stop)), shard), (
                    p.target,
                    dim,
                    start,
                    stop,
                )


def test_a_transposed_region_reads_columns_of_the_stored_tensor():
    (placement,) = RULES.placements("c_fc")
    assert placement.region == StoredRegion(transposed=True)
    # rows 2:5 of up_t [10, 6] are columns 2:5 of the stored [6, 10]
    assert placement.region.stored_index((6, 10), (0, 2, 5)) == (slice(0, 6), slice(2, 5))
    k = RULES.placements("c_attn_t")[1]  # k: columns 4:8 of the stored [5, 12]
    assert k.region.stored_index((5, 12), (0, 1, 3)) == (slice(0, 5), slice(5, 7))


def test_opaque_transform_has_no_region_and_a_plain_rename_needs_none():
    opaque = RULES.placements("stacked")
    assert all(p.region is None and not p.is_structural for p in opaque)
    (plain,) = RULES.placements("plain")
    assert plain.region is None and plain.derive is None and plain.is_structural


@pytest.mark.parametrize(
    "region, shape, message",
    [
        (StoredRegion(dim=0, index=0, count=3), (10, 4), "into 3 equal parts"),
        (StoredRegion(dim=0, index=0, count=2, sizes=(3, 3)), (10, 4), "do not add up"),
        (StoredRegion(transposed=True), (10,), "cannot transpose"),
        (StoredRegion(dim=2), (10, 4), "out of range"),
    ],
)
def test_a_stored_shape_that_does_not_fit_the_region_is_a_value_error(region, shape, message):
    with pytest.raises(ValueError, match=message):
        region.shape(shape)


def test_a_cut_past_the_part_is_a_value_error():
    with pytest.raises(ValueError, match="rows 0:9 of dim 0 of size 8"):
        StoredRegion(dim=0, index=1, count=2).ranges((16, 4), (0, 0, 9))

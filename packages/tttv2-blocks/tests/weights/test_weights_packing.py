"""pack_weights: every CPU parameter moves into one buffer in order of use, with its values,
shape, strides, identity and storage sharing (tied weights, views) unchanged."""

from __future__ import annotations

import importlib

import torch
from torch import nn

from tttv2.blocks.weights import pack_weights

packing = importlib.import_module("tttv2.blocks.weights.packing")


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.embed = nn.Embedding(50, 24)
        self.inner = nn.Sequential(nn.Linear(24, 40), nn.Linear(40, 24, bias=False)).to(
            torch.bfloat16
        )
        self.norm = nn.Parameter(torch.randn(24, generator=g))
        self.head = nn.Linear(24, 50, bias=False)
        self.head.weight = self.embed.weight  # tied: one Parameter
        whole = torch.randn(6, 10, generator=g)
        self.top = nn.Parameter(whole[:2])  # two Parameters viewing one storage
        self.rest = nn.Parameter(whole[2:].t())  # (transposed: strides kept)


def _snapshot(m: nn.Module) -> dict[str, tuple]:
    return {
        n: (p, p.detach().clone(), p.shape, p.stride(), p.dtype)
        for n, p in m.named_parameters(remove_duplicate=False)
    }


def test_values_identity_shapes_and_strides_survive(monkeypatch):
    m = Tied()
    before = _snapshot(m)
    packed = pack_weights(m)
    assert packed > 0
    for name, p in m.named_parameters(remove_duplicate=False):
        obj, values, shape, stride, dtype = before[name]
        assert p is obj, name
        assert (p.shape, p.stride(), p.dtype) == (shape, stride, dtype), name
        assert torch.equal(p.detach(), values), name
    y = m.inner(torch.randn(3, 24).to(torch.bfloat16))  # still a working module
    assert y.shape == (3, 24)


def test_parameters_share_one_buffer_in_order_of_use_aligned():
    m = Tied()
    pack_weights(m)
    params = list(m.parameters())
    storages = {p.untyped_storage().data_ptr() for p in params}
    assert len(storages) == 1  # one buffer
    starts = [p.data_ptr() for p in params if p.storage_offset() == 0 or p is m.top]
    assert all(s % packing.ALIGN == 0 for s in starts)
    # model.parameters() order: the module's own, then each child's in registration order
    # (a decoder: embedding, layer after layer, final norm, head: the order a pass reads them)
    firsts = [
        p.data_ptr()
        for p in (m.norm, m.embed.weight, m.inner[0].weight, m.inner[0].bias, m.inner[1].weight)
    ]
    assert firsts == sorted(firsts)


def test_tied_and_viewing_parameters_still_share_after_packing():
    m = Tied()
    pack_weights(m)
    assert m.head.weight is m.embed.weight
    with torch.no_grad():
        m.top[0, 0] = 123.0
    # top and rest were views of one 6x10 tensor: rest's first column is whole[2:, 0]
    whole = torch.empty(0).set_(m.top.untyped_storage(), m.top.storage_offset(), (6, 10), (10, 1))
    assert float(whole[0, 0]) == 123.0
    assert torch.equal(whole[2:].t(), m.rest.detach())


def test_memory_is_freed_storage_by_storage():
    m = Tied()
    old = [p.untyped_storage().data_ptr() for p in m.parameters()]
    pack_weights(m)
    assert not set(old) & {p.untyped_storage().data_ptr() for p in m.parameters()}


def test_nothing_to_pack_on_other_devices():
    m = nn.Linear(4, 4, device="meta")
    assert pack_weights(m) == 0
    assert m.weight.device.type == "meta"

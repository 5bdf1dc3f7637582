"""compare_to_torch / CompareSession: every call of a watched module is compared with a
reference, logged and recorded; the first departing module is found."""

import logging

import pytest
import torch

from tttv2.testing import Tolerance
from tttv2.testing.debug import CompareSession, compare_to_torch


class Stack(torch.nn.Module):
    def __init__(self, n=3, dim=8):
        super().__init__()
        torch.manual_seed(0)
        self.layers = torch.nn.ModuleList(torch.nn.Linear(dim, dim) for _ in range(n))

    def forward(self, x):
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x


def linear_reference(layer):
    weight, bias = layer.weight.detach().clone(), layer.bias.detach().clone()
    return lambda x: x @ weight.T + bias


def test_matching_modules_pass_and_are_logged(caplog):
    model = Stack()
    x = torch.randn(4, 8)
    with caplog.at_level(logging.INFO, logger="tttv2.testing.debug"), CompareSession() as session:
        for i, layer in enumerate(model.layers):
            session.watch(layer, linear_reference(layer), name=f"layer{i}")
        model(x)
        model(x)
    assert [(r.name, r.call) for r in session.records] == [
        ("layer0", 0),
        ("layer1", 0),
        ("layer2", 0),
        ("layer0", 1),
        ("layer1", 1),
        ("layer2", 1),
    ]
    assert all(r.passed and r.pcc > 0.9999 and r.max_abs_error < 1e-5 for r in session.records)
    assert session.first_failure() is None
    assert sum("layer1#0: PCC" in m for m in caplog.messages) == 1
    # hooks are gone after the session
    model(x)
    assert len(session.records) == 6


def test_first_departing_module_is_found(caplog):
    model = Stack()
    refs = [linear_reference(layer) for layer in model.layers]
    with torch.no_grad():
        model.layers[1].weight[:, :4] = model.layers[1].weight[:, :4].flip(1)  # a "loading bug"
    with (
        caplog.at_level(logging.WARNING, logger="tttv2.testing.debug"),
        CompareSession() as session,
    ):
        for i, (layer, ref) in enumerate(zip(model.layers, refs, strict=True)):
            session.watch(layer, ref, name=f"layer{i}")
        model(torch.randn(16, 8))
    bad = session.first_failure()
    assert bad is not None and bad.name == "layer1"
    assert any("layer1#0" in m for m in caplog.messages)
    assert "FAIL" in session.summary() and "layer0" in session.summary()


def test_replace_output_isolates_each_module():
    model = Stack()
    refs = [linear_reference(layer) for layer in model.layers]
    with torch.no_grad():
        model.layers[0].weight.mul_(-1)  # a sign bug
    x = torch.randn(16, 8)
    expected = x
    for ref in refs:
        expected = torch.tanh(ref(expected))
    with CompareSession() as session:
        for i, (layer, ref) in enumerate(zip(model.layers, refs, strict=True)):
            session.watch(layer, ref, name=f"layer{i}", replace_output=True)
        out = model(x)
    # layer 0 is reported, but its reference output was passed on, so later layers pass
    assert [r.passed for r in session.records] == [False, True, True]
    assert torch.allclose(out, expected, atol=1e-6)


def test_compare_to_torch_shortcut_and_tuple_outputs():
    class Pair(torch.nn.Module):
        def forward(self, x, scale=1.0):
            return x * scale, "aux"

    module = Pair()
    session = compare_to_torch(module, lambda x, scale=1.0: (x * scale * 1.5, None), name="pair")
    out = module(torch.randn(3, 3), scale=2.0)  # kwargs reach the reference too
    session.close()
    assert out[1] == "aux"
    record = session.records[0]
    assert record.pcc == pytest.approx(1.0)  # correlated but off by a factor: the PCC alone
    assert record.max_abs_error > 0  # does not see scale bugs, the error norm does
    assert not record.passed and record.rel_error == pytest.approx(1 / 3)  # |x - 1.5x| / |1.5x|
    with pytest.raises(ValueError, match="already watched"):
        session.watch(module, lambda x: x, name="pair")


class Scaled(torch.nn.Module):
    """A layer whose output is right up to a scale and an offset: 2 * linear(x) + 3."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return 2 * self.layer(x) + 3


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_scale_and_offset_bugs_fail_although_pcc_passes(dtype):
    torch.manual_seed(0)
    right, wrong = torch.nn.Linear(16, 16).to(dtype), Scaled(torch.nn.Linear(16, 16).to(dtype))
    x = torch.randn(8, 16, dtype=dtype)
    with CompareSession() as session:
        session.watch(right, linear_reference(right), name="right")
        session.watch(wrong, linear_reference(wrong.layer), name="wrong")
        right(x)
        wrong(x)
    good, bad = session.records
    assert good.passed, good.message
    assert bad.pcc > 0.99 and not bad.passed  # PCC alone would pass it
    assert "relative L2 error" in bad.message and bad.rel_error > 1
    assert session.first_failure() is bad
    # the tolerance is the preset of the less precise output unless one is given
    with compare_to_torch(
        wrong, linear_reference(wrong.layer), tolerance=Tolerance("loose", 10.0, 10.0, 0.9)
    ) as s:
        wrong(x)
    assert s.records[0].passed, s.records[0].message

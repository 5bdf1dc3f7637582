"""KernelLinear: the kernel path equals ``nn.Linear``; other layers are called as modules."""

from __future__ import annotations

import torch

from tttv2.blocks.building_blocks.linear import KernelLinear


def test_plain_linear_through_the_kernel_equals_the_module() -> None:
    torch.manual_seed(0)
    run = KernelLinear()
    for bias in (False, True):
        layer = torch.nn.Linear(16, 7, bias=bias)
        for shape in ((1, 16), (5, 16), (2, 3, 16)):
            x = torch.randn(*shape)
            with torch.no_grad():
                got, want = run(layer, x), layer(x)
            assert got.shape == want.shape
            assert (got - want).abs().max() < 1e-5


def test_other_layers_and_hooked_layers_run_their_forward() -> None:
    run = KernelLinear()
    calls: list[str] = []

    class Logged(torch.nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append("subclass")
            return super().forward(x)

    run(Logged(4, 2), torch.randn(1, 4))
    hooked = torch.nn.Linear(4, 2)
    hooked.register_forward_pre_hook(lambda mod, inp: calls.append("pre-hook"))
    run(hooked, torch.randn(1, 4))
    run(torch.nn.Identity(), torch.randn(1, 4))  # anything callable as a module
    assert calls == ["subclass", "pre-hook"]

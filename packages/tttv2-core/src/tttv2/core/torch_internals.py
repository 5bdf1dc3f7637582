"""The one place tttv2 reads ``torch.nn.Module`` internals that torch has no public API for.

Binding a module's weights to a native kernel needs to notice, in a few C-level passes,
a child module or a parameter replaced and a forward hook added; torch keeps these in
``_modules``, ``_parameters`` and the hook dicts and offers no public view of them. Every
such read goes through a function here, so a torch release that changes them breaks one
file (the private-attribute check in ``tests/tools`` allows only this one).
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.nn.modules import module as torch_module


def child_slots(module: nn.Module) -> dict[str, Any]:
    """The live dict of ``module``'s direct children by attribute name (absent ones are None)."""
    return module._modules


def parameter_slots(module: nn.Module) -> dict[str, Any]:
    """The live dict of ``module``'s own parameters by attribute name (absent ones are None)."""
    return module._parameters


def forward_hook_dicts(module: nn.Module) -> tuple[dict[int, Any], dict[int, Any]]:
    """The live dicts of ``module``'s forward hooks and forward pre-hooks."""
    return module._forward_hooks, module._forward_pre_hooks


def has_forward_hooks(module: nn.Module) -> bool:
    """Whether ``module`` has a forward hook or pre-hook of its own."""
    return bool(module._forward_hooks or module._forward_pre_hooks)


def global_forward_hooks() -> bool:
    """Whether forward hooks registered for every module exist (they must see each call)."""
    return bool(
        getattr(torch_module, "_global_forward_hooks", None)
        or getattr(torch_module, "_global_forward_pre_hooks", None)
    )

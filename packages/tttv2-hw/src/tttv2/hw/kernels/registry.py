"""The kernel registry: named operations, implemented by backends, chosen per device.

A *kernel* is a plain function for one operation (``"prefill_attention"``, ...). A
*backend* is a named set of kernels. Backend names end in the torch device type they
serve (``"torch-cpu"``, ``"torch-cuda"``, ``"ttnn-tt"``); a name without a device suffix
(``"torch"``) is generic and serves every device. :func:`get_kernel` picks, for the
device's type, in this order:

1. third-party backends named ``<name>-<device type>`` (the most recently registered first),
2. ``torch-<device type>``,
3. other generic third-party backends, then
4. the generic ``torch`` backend.

Third-party packages add backends without touching this package through the entry-point
group ``tttv2.kernels``; the entry point names a function called once with no arguments
that calls :func:`register_kernel` (this is the plug-in point for a ``ttnn`` backend)::

    [project.entry-points."tttv2.kernels"]
    ttnn = "my_ttnn_kernels:register"

Blocks call :func:`get_kernel` once at construction and keep the function, so the lookup
never sits on a hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import torch

from tttv2.core.errors import TTTv2Error, UnknownNameError
from tttv2.hw.kernels.decode_layers import SIGNATURE as DECODE_LAYERS_SIGNATURE
from tttv2.hw.kernels.int8_linear import SIGNATURE as INT8_LINEAR_SIGNATURE
from tttv2.hw.kernels.routed_experts import SIGNATURE as ROUTED_EXPERTS_SIGNATURE

ENTRY_POINT_GROUP = "tttv2.kernels"
GENERIC_BACKEND = "torch"

#: Operation name -> one-line signature. Every backend implements a subset of these.
KERNEL_OPS: dict[str, str] = {
    "prefill_attention": "(q [B,H,Sq,D], k/v [B,Hkv,Sk,D], *, scale, sliding_window=None, softcap=None) -> [B,H,Sq,D]",
    "paged_decode_attention": (
        "(q [B,H,D], k_pool/v_pool [N,block,Hkv,D], block_tables [B,W], seq_lens [B], *, scale, "
        "sliding_window=None, softcap=None, max_seq_len=None) -> [B,H,D]"
    ),
    "rms_norm": "(x [..., dim], weight [dim], eps, *, unit_offset=False) -> [..., dim]",
    "apply_rotary": "(x [T,H,D], cos/sin [T,R/2], *, interleaved=False) -> [T,H,D]",
    "linear": "(x [..., in], weight [out, in], bias [out] | None = None) -> [..., out]",
    # weight-only int8, symmetric per output channel (tttv2.hw.kernels.int8_linear)
    "int8_linear": INT8_LINEAR_SIGNATURE,
    # a decode step's decoder layers in one backend call (tttv2.hw.kernels.decode_layers)
    "decode_layers": DECODE_LAYERS_SIGNATURE,
    # the chosen experts of a mixture-of-experts layer (tttv2.hw.kernels.routed_experts)
    "routed_experts": ROUTED_EXPERTS_SIGNATURE,
}

Kernel = Callable[..., Any]

_BACKENDS: dict[str, dict[str, Kernel]] = {}
_ORDER: list[str] = []  # registration order of backend names (first registration counts)
_entry_points_loaded = False


def define_kernel_op(op: str, signature: str) -> None:
    """Declare a new operation name so backends may register kernels for it."""
    if not op.isidentifier():
        raise ValueError(f"kernel op name must be an identifier, got {op!r}")
    KERNEL_OPS.setdefault(op, signature)


def register_kernel(backend: str, op: str, fn: Kernel) -> Kernel:
    """Make ``fn`` the ``op`` kernel of ``backend`` (replacing an earlier one); returns ``fn``."""
    if op not in KERNEL_OPS:
        raise UnknownNameError("kernel op", op, KERNEL_OPS)
    if not isinstance(backend, str) or not backend:
        raise ValueError(f"backend name must be a non-empty string, got {backend!r}")
    if not callable(fn):
        raise TypeError(f"kernel for {backend}/{op} must be callable, got {fn!r}")
    if backend not in _BACKENDS:
        _BACKENDS[backend] = {}
        _ORDER.append(backend)
    _BACKENDS[backend][op] = fn
    return fn


def unregister_backend(backend: str) -> None:
    """Remove a backend and all its kernels (no-op when absent)."""
    if _BACKENDS.pop(backend, None) is not None:
        _ORDER.remove(backend)


def kernel_backends() -> dict[str, tuple[str, ...]]:
    """Registered backends and the operations each implements."""
    load_entry_points()
    return {name: tuple(sorted(_BACKENDS[name])) for name in _ORDER}


def device_type(device: torch.device | str | None) -> str:
    """``"cpu"`` for None, else the device's type (``"cuda:1"`` -> ``"cuda"``). Strings
    that torch does not know (e.g. ``"tt"``) are accepted as they are."""
    if device is None:
        return "cpu"
    if isinstance(device, torch.device):
        return device.type
    if isinstance(device, str) and device:
        return device.split(":", 1)[0].lower()
    raise TypeError(f"device must be a torch.device, a string or None, got {device!r}")


def backend_preference(dev_type: str) -> list[str]:
    """Backends in the order :func:`get_kernel` tries them for ``dev_type``."""
    load_entry_points()
    suffix = f"-{dev_type}"
    torch_specific = f"{GENERIC_BACKEND}{suffix}"
    specific = [b for b in reversed(_ORDER) if b.endswith(suffix) and b != torch_specific]
    generic = [b for b in reversed(_ORDER) if "-" not in b and b != GENERIC_BACKEND]
    ordered = specific + [torch_specific] + generic + [GENERIC_BACKEND]
    return [b for b in ordered if b in _BACKENDS]


def get_kernel(
    op: str, device: torch.device | str | None = None, *, backend: str | None = None
) -> Kernel:
    """The function implementing ``op`` for ``device`` (or from the named ``backend``)."""
    load_entry_points()
    if op not in KERNEL_OPS:
        raise UnknownNameError("kernel op", op, KERNEL_OPS)
    if backend is not None:
        if backend not in _BACKENDS:
            raise UnknownNameError("kernel backend", backend, _BACKENDS)
        kernels = _BACKENDS[backend]
        if op not in kernels:
            raise UnknownNameError(f"kernel op of backend {backend!r}", op, kernels)
        return kernels[op]
    dev_type = device_type(device)
    tried = backend_preference(dev_type)
    for name in tried:
        fn = _BACKENDS[name].get(op)
        if fn is not None:
            return fn
    raise TTTv2Error(
        f"no kernel backend implements {op!r} for device type {dev_type!r} "
        f"(tried: {', '.join(tried) or 'none'}; registered backends: {', '.join(_ORDER) or 'none'})"
    )


def load_entry_points(force: bool = False) -> None:
    """Run the ``register`` functions advertised in the ``tttv2.kernels`` group (once)."""
    global _entry_points_loaded
    if _entry_points_loaded and not force:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register = ep.load()
            if callable(register):
                register()
        except Exception as exc:
            raise TTTv2Error(
                f"kernel entry point {ep.name!r} ({ep.value}) failed to load: {exc}"
            ) from exc

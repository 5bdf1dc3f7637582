"""The ``decode_layers`` kernel op: registered per backend, one rule for the decode path,
and the native kernel's refusals as DecodeLayersUnsupported."""

from __future__ import annotations

import warnings
from dataclasses import replace

import pytest
import torch

from tttv2.hw import get_kernel
from tttv2.hw.kernels import DecodeLayer, DecodeLayersUnsupported
from tttv2.hw.kernels.decode_layers import NO_DECODE_LAYERS, choose_decode_path
from tttv2.hw.kernels.native.decode_layers import NATIVE_DECODE_LAYERS


def test_torch_cpu_registers_the_native_kernel_and_the_generic_backend_none() -> None:
    assert get_kernel("decode_layers", "cpu") is NATIVE_DECODE_LAYERS
    assert get_kernel("decode_layers", "meta") is NO_DECODE_LAYERS
    assert NO_DECODE_LAYERS.unavailable() is not None
    with pytest.raises(DecodeLayersUnsupported):
        NO_DECODE_LAYERS([], [], [])


def test_choose_decode_path() -> None:
    assert (
        choose_decode_path("meta", compile=False, fuse=True, kernel=NO_DECODE_LAYERS).kind
        == "eager"
    )
    off = choose_decode_path("cpu", compile=False, fuse=False, kernel=NATIVE_DECODE_LAYERS)
    assert (off.kind, off.reason, off.fuse) == ("eager", "fuse_decode_layers is off", False)
    compiled = choose_decode_path("meta", compile=True, fuse=True, kernel=NO_DECODE_LAYERS)
    assert compiled.kind == "compiled" and not compiled.fuse and "eager beyond" in compiled.reason


def test_the_native_kernel_refuses_what_it_cannot_take() -> None:
    if NATIVE_DECODE_LAYERS.unavailable() is not None:
        pytest.skip("the native decode layer kernel cannot be built here")
    from test_hw_native_decode_layer import SHAPE, layer_weights

    w = layer_weights()
    bad = replace(w, qkv_weight=w.qkv_weight.double())
    pool = torch.zeros(4, 4, SHAPE.num_kv_heads, SHAPE.head_dim)
    with pytest.raises(DecodeLayersUnsupported, match="qkv_weight"):
        NATIVE_DECODE_LAYERS([DecodeLayer(bad, SHAPE, None)], [pool], [pool])
    with pytest.raises(DecodeLayersUnsupported, match="no layers"):
        NATIVE_DECODE_LAYERS([], [], [])


def test_old_module_paths_import_the_moved_modules_with_a_warning() -> None:
    import tttv2.hw.kernels.native.rms_norm as moved

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import importlib
        import sys

        sys.modules.pop("tttv2.hw.kernels.native_rms_norm", None)
        old = importlib.import_module("tttv2.hw.kernels.native_rms_norm")
    assert old is moved
    assert any(
        issubclass(w.category, DeprecationWarning) and "native.rms_norm" in str(w.message)
        for w in caught
    )

"""Kernel registry: selection per device, third-party backends, errors listing names."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tttv2.core.errors import TTTv2Error, UnknownNameError
from tttv2.hw import DeviceConfig, get_kernel, kernel_backends, register_kernel
from tttv2.hw.kernels import registry
from tttv2.hw.kernels.rms_norm import cpu_rms_norm, rms_norm


@pytest.fixture
def scratch_backends():
    """Remove any backend or op a test registers."""
    before, ops = set(kernel_backends()), dict(registry.KERNEL_OPS)
    yield
    for name in set(kernel_backends()) - before:
        registry.unregister_backend(name)
    registry.KERNEL_OPS.clear()
    registry.KERNEL_OPS.update(ops)


def test_builtin_backends_cover_every_op():
    backends = kernel_backends()
    for name in ("torch", "torch-cpu", "torch-cuda"):
        assert set(backends[name]) == set(registry.KERNEL_OPS)


def test_device_types_pick_their_torch_backend():
    assert registry.backend_preference("cpu")[:2] == ["torch-cpu", "torch"]
    assert registry.backend_preference("cuda")[:2] == ["torch-cuda", "torch"]
    assert registry.backend_preference("mps") == ["torch"]


def test_forced_cuda_profile_selects_the_cuda_path(scratch_backends):
    marker = lambda *a, **k: "cuda kernel"  # noqa: E731
    register_kernel("torch-cuda", "rms_norm", marker)
    try:
        config = DeviceConfig.auto_detect("cuda:H100")
        assert get_kernel("rms_norm", config.device_type) is marker
        assert get_kernel("rms_norm", config.torch_device) is marker  # "cuda:0"
        assert get_kernel("rms_norm", "cpu") is cpu_rms_norm
    finally:
        register_kernel("torch-cuda", "rms_norm", rms_norm)


def test_third_party_device_backend_wins_for_its_device_only(scratch_backends):
    fast = lambda *a, **k: None  # noqa: E731
    register_kernel("fast-cpu", "apply_rotary", fast)
    assert get_kernel("apply_rotary", "cpu") is fast
    assert get_kernel("apply_rotary", "cuda") is not fast
    assert get_kernel("rms_norm", "cpu") is cpu_rms_norm  # ops it lacks fall through
    assert get_kernel("apply_rotary", backend="torch") is not fast


def test_tenstorrent_backend_plugs_in_by_device_type(scratch_backends):
    tt_kernel = lambda *a, **k: None  # noqa: E731
    register_kernel("ttnn-tt", "prefill_attention", tt_kernel)
    config = DeviceConfig.auto_detect("tt:N150")
    assert get_kernel("prefill_attention", config.device_type) is tt_kernel
    assert get_kernel("rms_norm", config.device_type) is rms_norm  # generic torch fallback


def test_entry_points_register_backends(monkeypatch, scratch_backends):
    calls = []

    def register():
        calls.append(1)
        register_kernel("plugin-cpu", "rms_norm", rms_norm)

    ep = SimpleNamespace(name="plugin", value="plugin:register", load=lambda: register)
    monkeypatch.setattr(
        registry, "entry_points", lambda group: [ep] if group == registry.ENTRY_POINT_GROUP else []
    )
    registry.load_entry_points(force=True)
    assert calls == [1] and "plugin-cpu" in kernel_backends()


def test_broken_entry_point_is_reported_by_name(monkeypatch, scratch_backends):
    def boom():
        raise ImportError("no module named fancy")

    ep = SimpleNamespace(name="fancy", value="fancy:register", load=boom)
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep])
    with pytest.raises(TTTv2Error, match="'fancy'.*no module named fancy"):
        registry.load_entry_points(force=True)


def test_unknown_op_lists_the_valid_ones():
    with pytest.raises(
        UnknownNameError, match="paged_decode_attention, prefill_attention, rms_norm"
    ):
        get_kernel("flash_attention")
    with pytest.raises(UnknownNameError, match="kernel op"):
        register_kernel("torch", "no_such_op", rms_norm)


def test_unknown_backend_lists_the_registered_ones():
    with pytest.raises(UnknownNameError, match="torch, torch-cpu, torch-cuda"):
        get_kernel("rms_norm", backend="triton")


def test_new_ops_can_be_declared(scratch_backends):
    registry.define_kernel_op("fused_add_rms_norm", "(x, residual, weight, eps) -> (y, residual)")
    fn = lambda *a: None  # noqa: E731
    register_kernel("mine-cpu", "fused_add_rms_norm", fn)
    assert get_kernel("fused_add_rms_norm") is fn


def test_no_backend_for_device_is_explained(scratch_backends):
    registry.define_kernel_op("only_on_tt", "()")
    register_kernel("ttnn-tt", "only_on_tt", lambda: None)
    with pytest.raises(
        TTTv2Error, match="no kernel backend implements 'only_on_tt' for device type 'cpu'"
    ):
        get_kernel("only_on_tt", "cpu")

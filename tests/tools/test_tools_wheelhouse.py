"""tools/wheelhouse.py: byte-reproducible rebuilds of real releases; model-lock auditing."""

import hashlib
import os
from pathlib import Path

import pytest
from conftest import REPO_ROOT, tool
from releases import last_release
from wheelhouse import build_wheel, model_requirements
from workspace import ToolError


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_real_release_rebuilds_byte_identical(tmp_path: Path) -> None:
    release = last_release(REPO_ROOT, "tttv2-core")
    first = build_wheel(REPO_ROOT, release, tmp_path / "a")
    old_umask = os.umask(0o077)  # different file modes in the extracted tree must not matter
    try:
        second = build_wheel(REPO_ROOT, release, tmp_path / "b")
    finally:
        os.umask(old_umask)
    assert first.name == second.name == f"tttv2_core-{release.version}-py3-none-any.whl"
    assert _sha(first) == _sha(second)


@pytest.mark.slow
def test_verify_flag_rebuilds_and_compares(tmp_path: Path) -> None:
    out = tmp_path / "wh"
    version = last_release(REPO_ROOT, "tttv2-hw").version
    args = ["--package", "tttv2-hw", "--version", version, "--out", str(out)]
    assert "built   tttv2_hw-" in tool(REPO_ROOT, "wheelhouse", *args).stdout
    proc = tool(REPO_ROOT, "wheelhouse", *args, "--verify")
    assert "present tttv2_hw-" in proc.stdout and "rebuilt byte-identical" in proc.stdout
    (wheel,) = out.glob("*.whl")
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    proc = tool(REPO_ROOT, "wheelhouse", *args, "--verify", check=False)
    assert proc.returncode == 1 and "is not reproducible" in proc.stderr


def test_unreleased_version_is_bad_input() -> None:
    proc = tool(
        REPO_ROOT, "wheelhouse", "--package", "tttv2-core", "--version", "0.0.1", check=False
    )
    assert proc.returncode == 2 and "tttv2-core 0.0.1 was never released; releases: " in proc.stderr


def test_model_lock_must_take_tttv2_packages_from_the_wheelhouse(tmp_path: Path) -> None:
    lock = tmp_path / "uv.lock"
    lock.write_text(
        'version = 1\n\n[[package]]\nname = "tttv2-core"\nversion = "2.0.0"\n'
        'source = { registry = "../../wheelhouse" }\n\n[[package]]\nname = "numpy"\n'
        'version = "2.0.0"\nsource = { registry = "https://pypi.org/simple" }\n'
    )
    wheelhouse, needed = model_requirements(REPO_ROOT, tmp_path)
    assert needed == [("tttv2-core", "2.0.0")]
    assert wheelhouse == (tmp_path / "../../wheelhouse").resolve()
    lock.write_text(lock.read_text().replace('"../../wheelhouse"', '"https://pypi.org/simple"'))
    with pytest.raises(
        ToolError, match="takes tttv2-core from https://pypi.org/simple, not from the wheelhouse"
    ):
        model_requirements(REPO_ROOT, tmp_path)


def test_example_model_lock_is_relative_and_wheelhouse_only() -> None:
    text = (REPO_ROOT / "models" / "example" / "uv.lock").read_text()
    assert str(REPO_ROOT) not in text, "uv.lock must not contain absolute paths of this clone"
    wheelhouse, needed = model_requirements(REPO_ROOT, REPO_ROOT / "models" / "example")
    assert wheelhouse == REPO_ROOT / "wheelhouse"
    assert {name for name, _ in needed} == {
        "tttv2-core",
        "tttv2-hw",
        "tttv2-blocks",
        "tttv2-testing",
        "tttv2-serve",  # through tttv2-testing's model kit (core 4 has no runtime)
    }

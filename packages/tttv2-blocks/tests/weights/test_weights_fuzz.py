"""Fuzz targets of the checkpoint readers: whatever bytes a safetensors file or an index
holds, reading it either succeeds or raises the library's checkpoint error -- never another
exception (a traceback in the CLI). Bounded in the normal test job by the hypothesis profile
of blocks_fuzz.py; run longer with ``TTTV2_FUZZ_PROFILE=tttv2-fuzz-long``."""

from __future__ import annotations

import json
import math
import struct

import pytest
import torch
from blocks_fuzz import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

from tttv2.blocks.weights import SafetensorsCheckpoint
from tttv2.blocks.weights.dtypes import SAFETENSORS_ITEMSIZE
from tttv2.blocks.weights.errors import CheckpointError, CorruptCheckpointError
from tttv2.blocks.weights.safetensors_header import read_header

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# near-valid entries reach every check of the reader, not only the JSON parser
SIZES = st.integers(-2, 64) | st.booleans() | st.floats(-1, 64) | st.integers(2**62, 2**70)
ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "dtype": st.sampled_from(sorted(SAFETENSORS_ITEMSIZE)) | JSON,
        "shape": st.lists(SIZES, max_size=4) | JSON,
        "data_offsets": st.lists(SIZES, max_size=3) | JSON,
    },
)
HEADER = st.dictionaries(st.text(max_size=8), ENTRY | JSON, max_size=4) | JSON
BIG_NUMBER = st.integers(4301, 6000).map(lambda n: "1" * n)  # beyond int()'s digit limit
DEEP = st.integers(1, 3000).map(lambda n: "[" * n + "]" * n)  # recursion


def _file_bytes(header_json: bytes, length_delta: int, data: bytes) -> bytes:
    return struct.pack("<Q", max(0, len(header_json) + length_delta)) + header_json + data


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _read(path) -> dict | None:
    """read_header's result, or None when it refused the file with CorruptCheckpointError
    (any other exception fails the test)."""
    try:
        return read_header(path)
    except CorruptCheckpointError:
        return None


@fuzz_settings()
@given(raw=st.binary(max_size=512))
def test_arbitrary_bytes(folder, raw):
    path = folder / "bytes.safetensors"
    path.write_bytes(raw)
    tensors = _read(path)
    if tensors is not None:  # only a header that is a JSON object of valid entries passes
        assert len(raw) >= 8


@fuzz_settings()
@given(
    header=HEADER,
    raw_json=st.none() | BIG_NUMBER | DEEP | st.text(max_size=40),
    delta=st.sampled_from([0, 0, 0, -1, 1, -8, 7, 2**40]),
    data=st.binary(max_size=256),
)
def test_arbitrary_json_headers(folder, header, raw_json, delta, data):
    text = json.dumps(header) if raw_json is None else raw_json
    path = folder / "json.safetensors"
    path.write_bytes(_file_bytes(text.encode("utf-8", "surrogatepass"), delta, data))
    tensors = _read(path)
    if tensors is not None:
        for info in tensors.values():  # what it accepted is what the file can hold
            assert info.dtype in SAFETENSORS_ITEMSIZE and all(
                type(d) is int and d >= 0 for d in info.shape
            )
            assert (
                info.nbytes == math.prod(info.shape) * SAFETENSORS_ITEMSIZE[info.dtype] <= len(data)
            )


DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.int32, torch.uint8]


@fuzz_settings()
@given(
    shapes=st.lists(st.lists(st.integers(1, 4), max_size=3), min_size=1, max_size=3),
    dtype=st.sampled_from(DTYPES),
    cut=st.floats(0, 1, exclude_max=True),
)
def test_truncated_files(folder, shapes, dtype, cut):
    path = folder / "real.safetensors"
    save_file({f"t{i}": torch.ones(s, dtype=dtype) for i, s in enumerate(shapes)}, str(path))
    data = path.read_bytes()
    whole = read_header(path)
    with safe_open(str(path), framework="pt") as f:  # the reference: the safetensors library
        assert {n: tuple(f.get_slice(n).get_shape()) for n in f.keys()} == {
            n: t.shape for n, t in whole.items()
        }
    path.write_bytes(
        data[: int(cut * len(data))]
    )  # every tensor holds >= 1 byte: any cut loses some
    with pytest.raises(CorruptCheckpointError):
        read_header(path)


SHARD_NAMES = (
    st.sampled_from(
        [
            "a.safetensors",
            "../a.safetensors",
            "/a.safetensors",
            "sub/../a.safetensors",
            "",
            ".",
            "missing.safetensors",
            "a" * 300,
            "a\x00b",
            "a.safetensors/",
        ]  # too long for the OS, NUL, a trailing slash
    )
    | st.text(max_size=300)
    | JSON
)


@fuzz_settings()
@given(
    index=st.fixed_dictionaries(
        {
            "weight_map": st.dictionaries(
                st.sampled_from(["w", "x"]) | st.text(max_size=6), SHARD_NAMES, max_size=3
            )
        }
    )  # fmt: skip
    | JSON
    | st.text(max_size=30)
)
def test_arbitrary_index_files(folder, index):
    ckpt = folder / "indexed"
    ckpt.mkdir(exist_ok=True)
    if not (ckpt / "a.safetensors").is_file():
        save_file({"w": torch.ones(2)}, str(ckpt / "a.safetensors"))
    text = index if isinstance(index, str) else json.dumps(index)
    (ckpt / "model.safetensors.index.json").write_text(
        text, encoding="utf-8", errors="surrogatepass"
    )
    try:
        with SafetensorsCheckpoint(ckpt) as checkpoint:
            files = checkpoint.files
    except CheckpointError:
        return
    assert all(f.resolve().parent == ckpt.resolve() for f in files)  # nothing outside the folder

"""SafetensorsCheckpoint: discovery of single, sharded and indexed folders, and clear
errors for missing folders, pickles, truncated or corrupt files and bad indexes."""

from __future__ import annotations

import json
import os
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

from tttv2.blocks.weights import (
    CheckpointError,
    CorruptCheckpointError,
    SafetensorsCheckpoint,
    read_header,
)


def tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "a.weight": torch.randn(4, 3, generator=g),
        "b.weight": torch.randn(5, generator=g).to(torch.bfloat16),
        "c.bias": torch.arange(6, dtype=torch.int64).reshape(2, 3),
    }


def test_single_file_names_shapes_and_values(tmp_path):
    ref = tensors()
    save_file(ref, tmp_path / "model.safetensors")
    with SafetensorsCheckpoint(tmp_path) as ckpt:
        assert sorted(ckpt.names) == sorted(ref)
        assert len(ckpt) == 3 and "a.weight" in ckpt
        for name, t in ref.items():
            assert ckpt.shape(name) == tuple(t.shape)
            got = ckpt.get(name)
            assert got.dtype == t.dtype and torch.equal(got, t)
        assert ckpt.total_bytes == sum(t.numel() * t.element_size() for t in ref.values())


def test_sharded_with_index_follows_weight_map(tmp_path):
    ref = tensors()
    save_file({"a.weight": ref["a.weight"]}, tmp_path / "model-00001-of-00002.safetensors")
    save_file(
        {k: ref[k] for k in ("b.weight", "c.bias")}, tmp_path / "model-00002-of-00002.safetensors"
    )
    weight_map = {"a.weight": "model-00001-of-00002.safetensors"}
    weight_map |= {k: "model-00002-of-00002.safetensors" for k in ("b.weight", "c.bias")}
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    with SafetensorsCheckpoint(tmp_path) as ckpt:
        assert len(ckpt.files) == 2
        for name, t in ref.items():
            assert torch.equal(ckpt.get(name), t)


def test_shards_without_index_are_merged_and_collisions_rejected(tmp_path):
    ref = tensors()
    save_file({"a.weight": ref["a.weight"]}, tmp_path / "x.safetensors")
    save_file({"b.weight": ref["b.weight"]}, tmp_path / "y.safetensors")
    with SafetensorsCheckpoint(tmp_path) as ckpt:
        assert sorted(ckpt.names) == ["a.weight", "b.weight"]
    save_file({"a.weight": ref["a.weight"]}, tmp_path / "z.safetensors")
    with pytest.raises(
        CheckpointError, match=r"'a\.weight' is in both x\.safetensors and z\.safetensors"
    ):
        SafetensorsCheckpoint(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        SafetensorsCheckpoint(tmp_path / "nope")


def test_pickles_are_never_loaded(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin: only safetensors are loaded"):
        SafetensorsCheckpoint(tmp_path)


@pytest.mark.parametrize("keep", [0, 5, 8, 20, -1])
def test_truncated_file_is_reported_by_name(tmp_path, keep):
    path = tmp_path / "model.safetensors"
    save_file(tensors(), path)
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:-7])
    with pytest.raises(CorruptCheckpointError, match=r"model\.safetensors.*truncated|corrupt"):
        SafetensorsCheckpoint(tmp_path)


def test_truncated_data_names_the_tensor(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"only": torch.zeros(100)}, path)
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(CorruptCheckpointError, match=r"truncated: tensor 'only' ends at byte 400"):
        read_header(path)


def _write_raw(path, header: object, data: bytes = b"") -> None:
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"\xff\xfe not json", "corrupt safetensors header"),
        ([1, 2], "not a JSON object"),
        ({"t": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, "unknown dtype 'F99'"),
        ({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, "shape"),
        ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [4, 0]}}, "data_offsets"),
        ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, "needs 8 bytes"),
    ],
)
def test_corrupt_headers(tmp_path, header, message):
    _write_raw(tmp_path / "model.safetensors", header, b"\0" * 16)
    with pytest.raises(CorruptCheckpointError, match=message):
        SafetensorsCheckpoint(tmp_path)


def test_index_naming_a_missing_shard(tmp_path):
    save_file({"a": torch.zeros(1)}, tmp_path / "s1.safetensors")
    index = {"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="shard 's2.safetensors'"):
        SafetensorsCheckpoint(tmp_path)


def test_index_placing_a_tensor_in_the_wrong_shard(tmp_path):
    save_file({"a": torch.zeros(1)}, tmp_path / "s1.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors"}})
    )
    with pytest.raises(CorruptCheckpointError, match=r"b \(s1\.safetensors\)"):
        SafetensorsCheckpoint(tmp_path)


def test_unreadable_index(tmp_path):
    save_file({"a": torch.zeros(1)}, tmp_path / "s1.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text("{not json")
    with pytest.raises(CorruptCheckpointError, match="not a valid safetensors index"):
        SafetensorsCheckpoint(tmp_path)


def test_header_agrees_with_the_safetensors_library(tmp_path):
    ref = tensors()
    path = tmp_path / "model.safetensors"
    save_file(ref, path, metadata={"format": "pt"})
    infos = read_header(path)
    loaded = load_file(path)
    assert set(infos) == set(loaded)
    for name, info in infos.items():
        assert info.shape == tuple(loaded[name].shape)
        assert info.nbytes == loaded[name].numel() * loaded[name].element_size()
        assert info.file == path and os.path.getsize(path) > info.nbytes

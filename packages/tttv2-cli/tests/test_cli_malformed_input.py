"""Malformed input is one line on stderr and exit status 2, decided by the error's type:
sharded checkpoints whose index names shards that are not strings or lie outside the
folder, and sampling values whose arithmetic would overflow. An error that is not a
validation error (a bug) keeps its traceback."""

from __future__ import annotations

import json
import shutil

import pytest

from tttv2.cli.main import main
from tttv2.core.errors import InputError

INDEX = "model.safetensors.index.json"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_exit_2(code: int, out: str, err: str, *fragments: str) -> None:
    assert code == 2 and out == "", (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def sharded_copy(ckpt, folder, shard_of) -> None:
    """``ckpt``'s folder with its one safetensors file named by an index whose weight_map
    value for every tensor is ``shard_of(tensor)``; the file itself is kept beside it."""
    from safetensors import safe_open

    shutil.copytree(ckpt.path, folder)
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        names = list(f.keys())
    weight_map = {name: shard_of(name) for name in names}
    (folder / INDEX).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


NOT_STRINGS = {  # weight_map values that are not file names: the type is the error
    "list": ["model.safetensors"],
    "int": 1,
    "null": None,
    "object": {"file": "model.safetensors"},
    "bool": True,
    "empty": "",
}


@pytest.mark.parametrize("kind", sorted(NOT_STRINGS))
def test_weight_map_values_that_are_not_strings(capsys, tiny_llama, tmp_path, kind):
    folder = tmp_path / "ckpt"
    sharded_copy(tiny_llama, folder, lambda name: NOT_STRINGS[kind])
    assert_one_line_exit_2(
        *run(capsys, "generate", "--checkpoint", str(folder), "--prompt-ids", "1,2"),
        f"{INDEX}: weight_map[",
        "expected a shard file name (a string)",
    )


@pytest.mark.parametrize("kind", ["parent", "nested-parent", "absolute", "windows-drive"])
def test_shard_paths_that_leave_the_checkpoint_folder(capsys, tiny_llama, tmp_path, kind):
    # a real, valid shard waits outside the folder: loading it would succeed, so only the
    # refusal of the path makes this exit 2
    outside = tmp_path / "x.safetensors"
    shutil.copy(tiny_llama.path / "model.safetensors", outside)
    folder = tmp_path / "ckpt"
    (tmp_path / "ckpt-sub").mkdir()
    shard = {
        "parent": "../x.safetensors",
        "nested-parent": "sub/../../x.safetensors",
        "absolute": str(outside),
        "windows-drive": "C:x.safetensors",
    }[kind]
    sharded_copy(tiny_llama, folder, lambda name: shard)
    if kind == "nested-parent":
        (folder / "sub").mkdir()
    assert_one_line_exit_2(
        *run(capsys, "validate", "--checkpoint", str(folder)),
        f"{INDEX}: weight_map[",
        "expected a shard file inside the checkpoint folder",
    )


def test_a_shard_in_a_subfolder_of_the_checkpoint_is_fine(capsys, tiny_llama, tmp_path):
    folder = tmp_path / "ckpt"
    sharded_copy(tiny_llama, folder, lambda name: "shards/model.safetensors")
    (folder / "shards").mkdir()
    (folder / "model.safetensors").rename(folder / "shards" / "model.safetensors")
    code, out, err = run(capsys, "generate", "--checkpoint", str(folder), "--prompt-ids", "1,2",
                         "--max-new-tokens", "2", "--json")  # fmt: skip
    assert code == 0, err
    assert len(json.loads(out)["generated_ids"]) == 2


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("1e-300", "SamplingParams.temperature=1e-300 is invalid"),  # 0 in float32: inf logits
        ("1e-45", "SamplingParams.temperature=1e-45 is invalid"),  # a float32 denormal
        ("0.001", "SamplingParams.temperature=0.001 is invalid"),
        ("1e300", "SamplingParams.temperature=1e+300 is invalid"),  # inf in float32
        ("nan", "--temperature"),
        ("inf", "--temperature"),
        ("-1", "--temperature"),
    ],
)
def test_sampling_values_that_would_overflow(capsys, tiny_llama, value, fragment):
    argv = (
        "generate",
        "--checkpoint",
        str(tiny_llama.path),
        "--prompt-ids",
        "1,2",
        "--temperature",
        value,
    )
    assert_one_line_exit_2(*run(capsys, *argv), fragment)


def test_smallest_allowed_temperature_samples_finite_tokens(capsys, tiny_llama):
    argv = ("generate", "--checkpoint", str(tiny_llama.path), "--prompt-ids", "1,2", "--temperature",
            "0.01", "--seed", "3", "--max-new-tokens", "4", "--json")  # fmt: skip
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    ids = json.loads(out)["generated_ids"]
    assert len(ids) == 4 and all(0 <= i < tiny_llama.vocab_size for i in ids)


class NewKindOfBadInput(InputError):
    """A validation error the CLI has never heard of."""


def test_any_input_error_is_one_line_and_anything_else_a_traceback(capsys, tiny_llama, monkeypatch):
    import tttv2.cli.loading as loading

    argv = ("generate", "--checkpoint", str(tiny_llama.path), "--prompt-ids", "1,2")

    def new_kind(*args, **kwargs):
        raise NewKindOfBadInput("config.json: frobnication=7 is invalid: expected 0")

    monkeypatch.setattr(loading, "load_model", new_kind)
    assert_one_line_exit_2(
        *run(capsys, *argv), "tttv2 generate: error: config.json: frobnication=7"
    )

    def bug(*args, **kwargs):
        raise KeyError("layers.0")  # an internal error, not a finding about the input

    monkeypatch.setattr(loading, "load_model", bug)
    with pytest.raises(KeyError, match="layers.0"):
        main(list(argv))

    def plain_value_error(*args, **kwargs):
        raise ValueError("math domain error")

    monkeypatch.setattr(loading, "load_model", plain_value_error)
    with pytest.raises(ValueError, match="math domain error"):
        main(list(argv))


class Exploding:
    def __reduce__(self):
        return (_explode, ())


def _explode():
    raise AssertionError("a pickle from the checkpoint folder was unpickled")


@pytest.fixture
def nothing_unpickled_or_asked(monkeypatch):
    import builtins

    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called")

    def no_prompt(*args, **kwargs):
        raise AssertionError("something asked on stdin")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(builtins, "input", no_prompt)


@pytest.mark.parametrize("verb", ["validate", "bench"])
def test_a_config_needing_remote_code_is_refused(
    capsys, tiny_llama, tmp_path, nothing_unpickled_or_asked, verb
):
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_llama.path, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_evil.py").write_text(f"open({str(tmp_path / 'RAN')!r}, 'w')\n")
    extra = (
        ["--prompt-len", "4", "--gen-len", "2", "--bandwidth-mib", "1"]
        if verb == "bench"
        else ["--seq-len", "8"]
    )
    assert_one_line_exit_2(
        *run(capsys, verb, "--checkpoint", str(folder), *extra),
        f"tttv2 {verb}: error:",
        "auto_map=",
        "trust_remote_code=False",
    )
    assert not (tmp_path / "RAN").exists()


def test_validate_reads_the_safetensors_never_the_pickle_beside_them(
    capsys, tiny_llama, tmp_path, nothing_unpickled_or_asked
):
    import torch

    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_llama.path, folder)
    (folder / "model.safetensors").rename(
        folder / "weights.safetensors"
    )  # transformers' default name is gone
    with open(folder / "pytorch_model.bin", "wb") as f:
        torch.save({"model.embed_tokens.weight": Exploding()}, f)
    code, out, err = run(
        capsys, "validate", "--checkpoint", str(folder), "--seq-len", "8", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["passed"] is True

"""The transformers reference loads built-in classes only, from exactly the safetensors files
our loader reads, and never unpickles or runs anything from the checkpoint folder."""

from __future__ import annotations

import builtins
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from tttv2.testing.hf import RemoteCodeRefusedError, load_reference_model, reference_files

transformers = pytest.importorskip("transformers")
IDS = torch.tensor([[3, 14, 15, 92, 65]])


class Exploding:
    """Unpickling this runs ``_explode``: a .bin holding it fails loudly if ever loaded."""

    def __reduce__(self):
        return (_explode, ())


def _explode():
    raise AssertionError("a pickle from the checkpoint folder was unpickled")


@pytest.fixture(scope="module")
def llama(tiny_checkpoint):
    return tiny_checkpoint("LlamaForCausalLM", seed=0)


@pytest.fixture
def no_unpickling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called")

    def no_prompt(*args, **kwargs):
        raise AssertionError("something asked on stdin")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(builtins, "input", no_prompt)


def _logits_of_original(llama) -> torch.Tensor:
    """transformers on the untouched folder (model.safetensors only, nothing else to pick)."""
    model = transformers.AutoModelForCausalLM.from_pretrained(
        llama.path, dtype=torch.float32
    ).eval()
    with torch.no_grad():
        return model(IDS).logits


def _copy_with_pickle(llama, folder, safetensors_name):
    shutil.copytree(llama.path, folder)
    (folder / "model.safetensors").rename(folder / safetensors_name)
    with open(folder / "pytorch_model.bin", "wb") as f:  # what transformers falls back to
        torch.save({"model.embed_tokens.weight": Exploding()}, f)


def test_a_pickle_beside_the_safetensors_is_never_read(llama, tmp_path, no_unpickling):
    # our loader reads any *.safetensors; transformers looks for model.safetensors and,
    # without one, unpickles pytorch_model.bin
    folder = tmp_path / "ckpt"
    want = _logits_of_original(llama)
    _copy_with_pickle(llama, folder, "weights.safetensors")
    assert sorted(reference_files(folder)) == ["config.json", "model.safetensors"]
    assert reference_files(folder)["model.safetensors"] == folder / "weights.safetensors"
    model = load_reference_model(folder)
    with torch.no_grad():
        assert torch.equal(model(IDS).logits, want)


def test_several_files_without_an_index_are_all_read(llama, tmp_path, no_unpickling):
    folder = tmp_path / "ckpt"
    want = _logits_of_original(llama)
    _copy_with_pickle(llama, folder, "all.safetensors")
    state = load_file(folder / "all.safetensors")
    names = sorted(state)
    save_file({n: state[n] for n in names[::2]}, folder / "part-a.safetensors")
    save_file({n: state[n] for n in names[1::2]}, folder / "part-b.safetensors")
    (folder / "all.safetensors").unlink()
    assert sorted(reference_files(folder)) == [
        "config.json",
        "part-a.safetensors",
        "part-b.safetensors",
    ]
    model = load_reference_model(folder)
    with torch.no_grad():
        assert torch.equal(model(IDS).logits, want)


def _with_config(llama, folder, **changes):
    shutil.copytree(llama.path, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    # the checkpoint's own code: running it leaves a mark
    (folder / "modeling_evil.py").write_text(
        f"open({str(folder / 'RAN')!r}, 'w').write('remote code ran')\n"
        "from transformers import LlamaForCausalLM as EvilForCausalLM\n"
    )


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"auto_map": {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}}, "auto_map="),
        ({"architectures": ["EvilForCausalLM"]}, "architectures names 'EvilForCausalLM'"),
        ({"model_type": "evil"}, "model_type='evil' is not an architecture transformers"),
    ],
)
def test_a_config_that_needs_remote_code_is_refused(
    llama, tmp_path, no_unpickling, changes, fragment
):
    folder = tmp_path / "ckpt"
    _with_config(llama, folder, **changes)
    with pytest.raises(RemoteCodeRefusedError, match=fragment) as error:
        load_reference_model(folder)
    assert "\n" not in str(error.value) and "trust_remote_code=False" in str(error.value)
    assert isinstance(error.value, ValueError)  # a tttv2 InputError: the CLI's exit 2
    assert not (folder / "RAN").exists()

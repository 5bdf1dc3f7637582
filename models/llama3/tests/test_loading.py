"""Loading Hugging Face folders as they are: the plugin is found by architecture name,
sharded and single-file checkpoints load, bad tensors are reported by name, truncated
files are named, progress is reported, and the tokenizer is the checkpoint's."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from tttv2_llama3 import load, plugin

from tttv2.blocks.weights import CheckpointError, CorruptCheckpointError, WeightMismatchError
from tttv2.core.errors import SpecError
from tttv2.core.model_plugins import find_model_plugin, list_model_plugins, load_model


def test_registered_as_the_llamaforcausallm_entry_point():
    assert list_model_plugins()["LlamaForCausalLM"] == "tttv2_llama3.plugin"
    assert find_model_plugin("LlamaForCausalLM") is plugin


def test_load_through_the_plugin_registry(build):
    ck = build()
    seen = []
    loaded = load_model(ck.path, dtype=torch.float32, progress=lambda *a: seen.append(a))
    assert loaded.spec.num_layers == ck.num_layers and loaded.max_context == 256
    assert loaded.eos_token_ids == (ck.config["eos_token_id"],)
    assert loaded.bos_token_id == ck.config["bos_token_id"]
    done = [d for _, d, _ in seen]
    assert done == sorted(done) and done[-1] == seen[-1][2] > 0
    text = "The quick brown fox"
    assert loaded.tokenizer.encode(text).ids == ck.load_tokenizer().encode(text).ids


def test_weights_are_the_checkpoint_tensors(build):
    """Every stored tensor lands in the parameter it names (after fusing q/k/v, gate/up)."""
    ck = build({"tie_word_embeddings": False})
    state = load_file(ck.path / "model.safetensors")
    model = load(ck.path).model
    layer = model.layers[1]
    qkv = torch.cat([state[f"model.layers.1.self_attn.{p}_proj.weight"] for p in "qkv"])
    assert torch.equal(layer.attention.qkv_proj.weight, qkv)
    gate_up = torch.cat([state[f"model.layers.1.mlp.{p}_proj.weight"] for p in ("gate", "up")])
    assert torch.equal(layer.ffn.gate_up_proj.weight, gate_up)
    assert torch.equal(
        layer.ffn_norm.weight, state["model.layers.1.post_attention_layernorm.weight"]
    )
    assert torch.equal(model.lm_head.weight, state["lm_head.weight"])
    assert torch.equal(model.final_norm.weight, state["model.norm.weight"])


def test_tied_head_is_the_embedding(build):
    ck = build({"tie_word_embeddings": True})
    model = load(ck.path).model
    assert model.lm_head.weight is model.embedding.weight


def edited_copy(ck, tmp_path, edit):
    folder = tmp_path / "edited"
    shutil.copytree(ck.path, folder)
    state = load_file(folder / "model.safetensors")
    edit(state)
    save_file(state, folder / "model.safetensors")
    return folder


def test_missing_unexpected_and_misshaped_tensors_are_named(build, tmp_path):
    ck = build({"tie_word_embeddings": False})

    def edit(state):
        del state["model.layers.0.mlp.up_proj.weight"]
        del state["model.norm.weight"]
        state["model.layers.0.self_attn.k_proj.weight"] = torch.zeros(7, 64)
        state["model.layers.9.self_attn.q_proj.weight"] = torch.zeros(64, 64)
        state["model.vision_tower.weight"] = torch.zeros(2)

    with pytest.raises(WeightMismatchError) as info:
        load(edited_copy(ck, tmp_path, edit))
    err = info.value
    assert sorted(err.missing) == ["final_norm.weight", "layers.0.ffn.up_proj.weight"]
    assert sorted(err.unexpected) == [
        "model.layers.9.self_attn.q_proj.weight (as layers.9.attention.q_proj.weight)",
        "model.vision_tower.weight",
    ]
    assert [m[0] for m in err.mismatched] == ["model.layers.0.self_attn.k_proj.weight"]


def test_old_checkpoints_with_inv_freq_and_tied_checkpoints_with_a_head_load(build, tmp_path):
    ck = build({"tie_word_embeddings": True})

    def edit(state):
        state["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(8)
        state["lm_head.weight"] = torch.zeros_like(state["model.embed_tokens.weight"])

    model = load(edited_copy(ck, tmp_path, edit)).model
    assert model.lm_head.weight is model.embedding.weight and model.embedding.weight.abs().sum() > 0


def test_truncated_shard_is_named(build, tmp_path):
    ck = build(max_shard_size="40KB")
    assert ck.sharded
    folder = tmp_path / "truncated"
    shutil.copytree(ck.path, folder)
    shard = sorted(folder.glob("model-*.safetensors"))[-1]
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(CorruptCheckpointError, match=rf"{shard.name}: truncated"):
        load(folder)


def test_pickle_only_folder_is_refused(build, tmp_path):
    ck = build()
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(ck.path / "config.json", folder)
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(CheckpointError, match="only safetensors are loaded"):
        load(folder)


def test_broken_tokenizer_is_reported(build, tmp_path):
    ck = build()
    folder = tmp_path / "badtok"
    shutil.copytree(ck.path, folder)
    (folder / "tokenizer.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not a valid tokenizer.json"):
        load(folder)


def test_no_tokenizer_is_fine(build, tmp_path):
    ck = build()
    folder = tmp_path / "notok"
    shutil.copytree(ck.path, folder)
    (folder / "tokenizer.json").unlink()
    assert load(folder).tokenizer is None


def test_malformed_config_values_are_one_line_spec_errors(build, tmp_path):
    import json

    ck = build()
    folder = tmp_path / "badconfig"
    shutil.copytree(ck.path, folder)
    config = json.loads((folder / "config.json").read_text())
    config["num_attention_heads"] = "four"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(SpecError, match=r"^LlamaConfig\.num_attention_heads='four' is invalid"):
        load(folder)
    del config["head_dim"]  # hidden_size // "four" is never computed
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(SpecError, match=r"^LlamaConfig\.num_attention_heads='four' is invalid"):
        load(folder)


@pytest.mark.parametrize(
    ("key", "value"), [("eos_token_id", 1.0), ("eos_token_id", [2, "3"]), ("bos_token_id", [1])]
)
def test_token_ids_of_the_wrong_json_type_are_one_line_spec_errors(build, tmp_path, key, value):
    import json

    ck = build()
    folder = tmp_path / "badids"
    shutil.copytree(ck.path, folder)
    config = json.loads((folder / "config.json").read_text())
    config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(SpecError, match=rf"^LlamaConfig\.{key}=.* is invalid: expected an integer"):
        load(folder)

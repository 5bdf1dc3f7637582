"""Tiny Hugging Face checkpoints: real folders that transformers and tokenizers load back,
reproducible from their seed, and reference outputs that agree with transformers' own
generation."""

import json

import pytest
import torch
from safetensors.torch import load_file

from tttv2.testing import assert_close
from tttv2.testing.hf import (
    TINY_DEFAULTS,
    build_tiny_checkpoint,
    find_decoder_layers,
    model_type_of,
    reference_outputs,
)

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def llama(tiny_checkpoint):
    return tiny_checkpoint("LlamaForCausalLM", seed=0)


def _tensors(folder):
    out = {}
    for file in sorted(folder.glob("*.safetensors")):
        out.update(load_file(file))
    return out


def test_checkpoint_folder_is_complete(llama):
    names = {p.name for p in llama.path.iterdir()}
    assert {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    } <= names
    config = json.loads((llama.path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["model_type"] == "llama"
    assert config["hidden_size"] == TINY_DEFAULTS["hidden_size"] and config["bos_token_id"] == 0
    generation = json.loads((llama.path / "generation_config.json").read_text())
    assert generation["bos_token_id"] == 0 and generation["eos_token_id"] == 1
    assert llama.num_layers == 2 and not llama.sharded


def test_tokenizer_loads_with_tokenizers_and_transformers(llama):
    text = "The key and value of every token are kept in a cache."
    raw = tokenizers.Tokenizer.from_file(str(llama.path / "tokenizer.json"))
    ids = raw.encode(text).ids
    assert ids[0] == 0  # <s> is added
    assert raw.decode(ids) == text  # byte-level: lossless
    assert max(ids) < llama.vocab_size
    assert len(ids) < len(text.encode())  # merges were learned
    fast = transformers.AutoTokenizer.from_pretrained(llama.path)
    assert fast(text).input_ids == ids
    assert fast.bos_token == "<s>" and fast.eos_token == "</s>" and fast.eos_token_id == 1
    assert transformers.PreTrainedTokenizerFast.from_pretrained(llama.path)(text).input_ids == ids


def test_model_loads_back_with_transformers_and_matches_saved_weights(llama):
    model = transformers.AutoModelForCausalLM.from_pretrained(llama.path)
    assert type(model).__name__ == "LlamaForCausalLM"
    saved = _tensors(llama.path)
    state = model.state_dict()
    assert set(saved) <= set(state)
    for name, tensor in saved.items():
        assert torch.equal(state[name], tensor), name
    norm = saved["model.layers.0.input_layernorm.weight"]
    assert not torch.equal(norm, torch.ones_like(norm))  # perturbed, so norm bugs show


def test_weights_and_tokenizer_are_reproducible_from_the_seed(tmp_path, llama):
    again = build_tiny_checkpoint(tmp_path / "a", "LlamaForCausalLM", seed=0)
    assert again.path != llama.path
    first, second = _tensors(llama.path), _tensors(again.path)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert (again.path / "tokenizer.json").read_bytes() == (
        llama.path / "tokenizer.json"
    ).read_bytes()
    other = _tensors(build_tiny_checkpoint(tmp_path / "b", "LlamaForCausalLM", seed=1).path)
    assert not torch.equal(other["model.embed_tokens.weight"], first["model.embed_tokens.weight"])


def test_checkpoints_are_cached_per_configuration(tiny_checkpoint, llama):
    marker = llama.path / "tttv2_tiny_checkpoint.json"
    stamp = marker.stat().st_mtime_ns
    assert tiny_checkpoint("LlamaForCausalLM", seed=0) == llama
    assert marker.stat().st_mtime_ns == stamp  # reused, not rebuilt
    wider = tiny_checkpoint(
        "LlamaForCausalLM", {"num_hidden_layers": 1}, seed=0, with_tokenizer=False
    )
    assert wider.path != llama.path and wider.num_layers == 1 and not wider.has_tokenizer


def test_sharded_checkpoint_has_an_index_and_the_same_weights(tmp_path, llama):
    sharded = build_tiny_checkpoint(tmp_path, "LlamaForCausalLM", seed=0, max_shard_size="100KB")
    index = json.loads((sharded.path / "model.safetensors.index.json").read_text())
    assert sharded.sharded and len(set(index["weight_map"].values())) > 1
    whole, parts = _tensors(llama.path), _tensors(sharded.path)
    assert whole.keys() == parts.keys() and all(torch.equal(whole[k], parts[k]) for k in whole)
    model = transformers.AutoModelForCausalLM.from_pretrained(sharded.path)
    assert torch.equal(model.state_dict()["lm_head.weight"], whole["lm_head.weight"])


def test_reference_outputs_agree_with_transformers_generate(llama):
    prompt = [0, 17, 101, 250, 33, 7]
    ref = reference_outputs(llama, prompt, greedy_steps=6)
    assert ref.logits.shape == (6, llama.vocab_size) and ref.logits.dtype == torch.float32
    assert ref.num_layers == 2 and all(h.shape == (6, 64) for h in ref.layer_outputs)
    assert torch.equal(ref.teacher_forced_top1, ref.logits.argmax(-1))
    model = llama.load_model()
    with torch.no_grad():
        generated = model.generate(
            torch.tensor([prompt]),
            max_new_tokens=6,
            min_new_tokens=6,
            do_sample=False,
            use_cache=True,
            pad_token_id=1,
        )
        logits = model(torch.tensor([prompt])).logits[0]
    assert ref.greedy_tokens.tolist() == generated[0, len(prompt) :].tolist()
    assert_close(ref.logits, logits, dtype=torch.float32)
    # hooks see each layer's raw output: transformers' hidden_states[i + 1] for all but the
    # last layer, whose entry there has the final norm applied
    assert_close(ref.layer_outputs[0], ref.hidden_states[1], dtype=torch.float32)
    assert len(ref.hidden_states) == 3
    again = reference_outputs(llama.path, prompt, greedy_steps=6)  # a folder works as well
    assert torch.equal(again.logits, ref.logits) and torch.equal(
        again.greedy_tokens, ref.greedy_tokens
    )


def test_reference_accepts_text_and_reduced_precision(llama):
    ref = reference_outputs(llama, "The quick brown fox", greedy_steps=2, dtype=torch.bfloat16)
    assert ref.input_ids[0] == 0 and ref.dtype == torch.bfloat16 and ref.greedy_tokens.numel() == 2
    assert ref.logits.dtype == torch.float32  # returned in fp32 for comparisons
    with pytest.raises(ValueError, match="empty"):
        reference_outputs(llama, [], greedy_steps=1)


def test_a_given_model_is_run_in_the_dtype_and_device_asked_for_or_refused(llama):
    prompt = [0, 17, 101, 250]
    model = llama.load_model()  # float32 on cpu
    with pytest.raises(
        ValueError,
        match=r"dtype=torch.bfloat16 does not match the model, which is in torch.float32",
    ):
        reference_outputs(model, prompt, greedy_steps=1, dtype=torch.bfloat16)
    with pytest.raises(
        ValueError, match=r"device='cuda' does not match the model, which is on 'cpu'"
    ):
        reference_outputs(model, prompt, greedy_steps=1, device="cuda")
    assert all(
        p.dtype == torch.float32 for p in model.parameters()
    )  # the caller's model is untouched
    fp32 = reference_outputs(model, prompt, greedy_steps=1)
    half = reference_outputs(
        llama.load_model(torch.bfloat16), prompt, greedy_steps=1, dtype=torch.bfloat16
    )
    assert half.dtype == torch.bfloat16
    assert not torch.equal(half.logits, fp32.logits)  # it really ran in bf16
    assert_close(
        half.logits,
        reference_outputs(llama, prompt, greedy_steps=1, dtype=torch.bfloat16).logits,
        dtype=torch.float32,
    )  # the same as loading the checkpoint in bf16
    with pytest.raises(ValueError, match="in torch.bfloat16"):
        reference_outputs(
            llama.load_model(torch.bfloat16), prompt, greedy_steps=1
        )  # default dtype is float32


def test_other_architectures_work(tiny_checkpoint):
    qwen = tiny_checkpoint(
        "Qwen2ForCausalLM", {"tie_word_embeddings": True, "num_hidden_layers": 1}, seed=3
    )
    assert qwen.model_type == "qwen2"
    model = qwen.load_model()
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert len(find_decoder_layers(model)) == 1
    bias = model.model.layers[0].self_attn.q_proj.bias
    assert bias is not None and bias.abs().sum() > 0  # perturbed away from zero
    ref = reference_outputs(model, [0, 5, 9], greedy_steps=1)
    assert ref.num_layers == 1


def test_bad_requests_explain_themselves(tmp_path):
    assert model_type_of("LlamaForCausalLM") == "llama"  # not another type sharing the class
    with pytest.raises(ValueError, match="not a causal-LM architecture"):
        model_type_of("LlamaForSomething")
    with pytest.raises(ValueError, match="too small|below"):
        build_tiny_checkpoint(tmp_path, config={"vocab_size": 100})
    assert not list(tmp_path.glob("*/config.json"))  # no half-built folder is left behind

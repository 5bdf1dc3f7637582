"""Random checkpoints written tensor by tensor are what save_pretrained would write: same
names and shapes, shards with an index, loadable by transformers and by our loader."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
import make_checkpoint  # noqa: E402

TINY = dict(
    vocab_size=97, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=128, rope_theta=10000.0,
)  # fmt: skip


def assert_last_logits_match_transformers(folder: Path, ids: list[int]) -> None:
    """Our loader's fp32 prefill of ``ids`` gives transformers' last logits (within 1e-4)."""
    from tttv2.core.model_plugins import load_model
    from tttv2.core.modes import ExecutionMode
    from tttv2.serve.runtime import Chunk, ModelRunner

    loaded = load_model(folder, dtype=torch.float32, device="cpu")
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    runner = ModelRunner(loaded.model, 4, 16, loaded.max_context, device="cpu")
    with torch.no_grad():
        ref = hf(torch.tensor([ids])).logits[0, -1]
        got = runner.forward([Chunk(0, ids)], ExecutionMode.PREFILL)[0][-1]
    assert (got.float() - ref).abs().max().item() < 1e-4


@pytest.mark.parametrize("tied", [False, True])
def test_names_shapes_and_shards_match_save_pretrained(tmp_path: Path, tied: bool) -> None:
    config = {**TINY, "tie_word_embeddings": tied}
    ours = make_checkpoint.write_checkpoint(
        tmp_path / "ours", config, torch.bfloat16, shard_bytes=40_000
    )
    reference = tmp_path / "reference"
    transformers.LlamaForCausalLM(transformers.LlamaConfig(**config)).to(
        torch.bfloat16
    ).save_pretrained(reference)

    def tensors(folder: Path) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
        from safetensors.torch import load_file

        out = {}
        for f in folder.glob("*.safetensors"):
            out.update({k: (v.dtype, tuple(v.shape)) for k, v in load_file(f).items()})
        return out

    assert tensors(ours) == tensors(reference)
    index = json.loads((ours / make_checkpoint.INDEX).read_text())
    files = sorted(p.name for p in ours.glob("*.safetensors"))
    assert len(files) > 1 and set(index["weight_map"].values()) == set(files)
    assert files[0] == f"model-00001-of-{len(files):05d}.safetensors"
    assert set(index["weight_map"]) == set(tensors(ours))
    assert not (tmp_path / "ours.partial").exists()

    model, info = transformers.LlamaForCausalLM.from_pretrained(ours, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert model.config.tie_word_embeddings is tied
    state = model.state_dict()
    assert torch.equal(
        state["model.norm.weight"], torch.ones(64, dtype=state["model.norm.weight"].dtype)
    )
    std = state["model.layers.0.mlp.up_proj.weight"].float().std().item()
    assert 0.8 * model.config.initializer_range < std < 1.2 * model.config.initializer_range


def test_our_loader_reads_it_and_matches_transformers(tmp_path: Path) -> None:
    from tttv2.core.model_plugins import list_model_plugins

    if "LlamaForCausalLM" not in list_model_plugins():
        pytest.skip("the LlamaForCausalLM model plugin (models/llama3) is not installed here")
    folder = make_checkpoint.write_checkpoint(
        tmp_path / "ckpt", TINY, torch.float32, shard_bytes=60_000
    )
    assert_last_logits_match_transformers(folder, [5, 17, 42, 8, 91])


def test_an_existing_folder_is_refused_and_a_complete_one_reused(
    tmp_path: Path, monkeypatch
) -> None:
    folder = make_checkpoint.write_checkpoint(tmp_path / "tiny", TINY)
    with pytest.raises(FileExistsError, match="exists"):
        make_checkpoint.write_checkpoint(folder, TINY)
    monkeypatch.setitem(make_checkpoint.SHAPES, "tiny", TINY)
    before = (folder / "model.safetensors").stat().st_mtime_ns
    assert make_checkpoint.checkpoint("tiny", tmp_path) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == before


def test_the_tokenizer_covers_the_model_vocabulary_and_every_id_decodes(
    tmp_path: Path, monkeypatch
) -> None:
    from tttv2.testing.hf.tokenizer import train_tokenizer

    config = {**TINY, "vocab_size": 900}  # the corpus runs out of merges before 900 tokens
    monkeypatch.setitem(make_checkpoint.SHAPES, "tiny", config)
    folder = make_checkpoint.checkpoint("tiny", tmp_path, tokenizer=True)
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    trained = train_tokenizer(900)
    assert trained.get_vocab_size() < 900 and len(tok) == 900
    text = "the quick brown fox jumps over the lazy dog"
    assert tok(text).input_ids == trained.encode(text).ids  # filling added no merges
    filled = range(trained.get_vocab_size(), 900)
    assert all(
        tok.decode([i]).startswith(" ") and tok.decode([i]).strip().isalpha() for i in filled
    )
    saved = json.loads((folder / "config.json").read_text())
    assert (
        (saved["bos_token_id"], saved["eos_token_id"])
        == (tok.bos_token_id, tok.eos_token_id)
        == (0, 1)
    )
    before = (folder / "tokenizer.json").stat().st_mtime_ns
    assert make_checkpoint.checkpoint("tiny", tmp_path, tokenizer=True) == folder  # reused as it is
    assert (folder / "tokenizer.json").stat().st_mtime_ns == before


#: Tiny versions of the non-Llama shapes: the same keys as make_checkpoint.SHAPES' entries.
FAMILIES = {
    "qwen2": dict(TINY, model_type="qwen2", tie_word_embeddings=True, use_sliding_window=False),
    "gemma2": dict(TINY, model_type="gemma2", norm_weight=0.0, head_dim=32, query_pre_attn_scalar=32,
                   sliding_window=8, attn_logit_softcapping=50.0, final_logit_softcapping=30.0),
    "phi3": dict(TINY, model_type="phi3", tie_word_embeddings=False, num_key_value_heads=4,
                 original_max_position_embeddings=128, pad_token_id=0),
    "gpt2": dict(model_type="gpt2", n_embd=64, n_layer=2, n_head=4, n_positions=128, vocab_size=97,
                 bos_token_id=0, eos_token_id=0),
    # experts stacked in memory, one tensor per expert on disk: the file must have the disk layout
    "mixtral": dict(TINY, model_type="mixtral", tie_word_embeddings=False, sliding_window=None,
                    num_local_experts=4, num_experts_per_tok=2),
    "qwen3_moe": dict(TINY, model_type="qwen3_moe", tie_word_embeddings=False, head_dim=16,
                      moe_intermediate_size=24, num_experts=4, num_experts_per_tok=2, norm_topk_prob=True),
}  # fmt: skip


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_other_families_match_their_save_pretrained_and_our_loader(
    tmp_path: Path, family: str
) -> None:
    from safetensors.torch import load_file

    from tttv2.core.model_plugins import list_model_plugins

    config = FAMILIES[family]
    ours = make_checkpoint.write_checkpoint(tmp_path / "ours", config, torch.float32)
    saved = json.loads((ours / "config.json").read_text())
    kwargs = {k: v for k, v in config.items() if k not in ("model_type", "norm_weight")}
    reference_config = transformers.AutoConfig.for_model(config["model_type"], **kwargs)
    reference = transformers.AutoModelForCausalLM.from_config(reference_config)
    (architecture,) = saved["architectures"]
    assert saved["model_type"] == config["model_type"] and architecture == type(reference).__name__
    reference.save_pretrained(tmp_path / "reference")
    written = load_file(ours / "model.safetensors")
    expected = load_file(tmp_path / "reference" / "model.safetensors")
    assert {k: v.shape for k, v in written.items()} == {k: v.shape for k, v in expected.items()}
    norms = [k for k in written if k.endswith(make_checkpoint.NORM_SUFFIXES)]
    biases = [k for k in written if k.endswith(".bias")]
    assert norms and all(bool((written[k] == config.get("norm_weight", 1.0)).all()) for k in norms)
    assert all(bool((written[k] == 0).all()) for k in biases)
    assert bool(biases) == (family in ("qwen2", "gpt2"))  # Qwen2's q/k/v biases, GPT-2's all

    if architecture not in list_model_plugins():
        pytest.skip(f"the {architecture} model plugin is not installed here")
    # longer than Gemma 2's window of 8
    assert_last_logits_match_transformers(ours, [5, 17, 42, 8, 91, 3, 60, 12, 33, 7])

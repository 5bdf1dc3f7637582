"""Rename rules that transform and split tensors while loading: a GPT-2 checkpoint written by
``save_pretrained`` (``Conv1D`` weights stored ``[in, out]``, q/k/v fused in ``c_attn``)
loads into a TransformerStack through ``load_weights`` alone and computes Hugging Face's
logits; missing, unexpected and mis-shaped tensors are still named after a transform or
split; splits of unequal sizes land where slicing says."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from tttv2.blocks import TransformerStack
from tttv2.blocks.weights import (
    RenameRuleError,
    RenameRules,
    SafetensorsCheckpoint,
    Split,
    WeightMismatchError,
    load_weights,
    plan_load,
    transpose,
)
from tttv2.core import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    ExecutionMode,
    FeedForwardSpec,
    KVBlockManager,
    LMHeadSpec,
    ModelSpec,
    NormSpec,
)

VOCAB, HIDDEN, HEADS, INTER, MAX_LEN, LAYERS = 96, 32, 4, 48, 64, 2


def _gpt2_rules() -> RenameRules:
    """Hugging Face GPT-2 names onto the stack's; ``Conv1D`` weights are stored ``[in, out]``
    (transposed here) and ``c_attn`` holds q, k and v one after the other (split here)."""
    layer = r"transformer\.h\.(\d+)\."
    return RenameRules(
        [
            (r"transformer\.wte\.weight", "embedding.weight"),
            (r"transformer\.wpe\.weight", "embedding.position_embedding"),
            (layer + r"ln_1\.(weight|bias)", r"layers.\1.attn_norm.\2"),
            (layer + r"ln_2\.(weight|bias)", r"layers.\1.ffn_norm.\2"),
            (
                layer + r"attn\.c_attn\.weight",
                Split([rf"layers.\1.attention.{p}_proj.weight" for p in "qkv"]),
                transpose,
            ),
            (
                layer + r"attn\.c_attn\.bias",
                Split([rf"layers.\1.attention.{p}_proj.bias" for p in "qkv"]),
            ),
            (layer + r"attn\.c_proj\.weight", r"layers.\1.attention.o_proj.weight", transpose),
            (layer + r"attn\.c_proj\.bias", r"layers.\1.attention.o_proj.bias"),
            (layer + r"mlp\.c_fc\.weight", r"layers.\1.ffn.up_proj.weight", transpose),
            (layer + r"mlp\.c_fc\.bias", r"layers.\1.ffn.up_proj.bias"),
            (layer + r"mlp\.c_proj\.weight", r"layers.\1.ffn.down_proj.weight", transpose),
            (layer + r"mlp\.c_proj\.bias", r"layers.\1.ffn.down_proj.bias"),
            (r"transformer\.ln_f\.(weight|bias)", r"final_norm.\1"),
        ]
    )


def _gpt2_spec() -> ModelSpec:
    norm = NormSpec(dim=HIDDEN, norm_type="layer", eps=1e-5, bias=True)
    layer = DecoderLayerSpec(
        attention=AttentionSpec(
            hidden_dim=HIDDEN, num_heads=HEADS, qkv_bias=True, out_bias=True, max_seq_len=MAX_LEN
        ),
        ffn=FeedForwardSpec(
            hidden_dim=HIDDEN,
            intermediate_dim=INTER,
            activation="gelu_tanh",
            gated=False,
            bias=True,
        ),
        attn_norm=norm,
        ffn_norm=norm,
    )
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN, max_positions=MAX_LEN),
        layers=(layer,) * LAYERS,
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB, tied=True),
        max_seq_len=MAX_LEN,
    )


@pytest.fixture(scope="module")
def gpt2_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """A tiny random GPT2LMHeadModel (biases and norms randomised too) and its
    ``save_pretrained`` folder (safetensors)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(
        vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_positions=MAX_LEN, n_inner=INTER,
        activation_function="gelu_new", layer_norm_epsilon=1e-5, bos_token_id=0, eos_token_id=0,
    ))  # fmt: skip
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "bias" in name or "ln_" in name:
                p.normal_(0, 0.3)
    folder = tmp_path_factory.mktemp("gpt2")
    hf.save_pretrained(folder, safe_serialization=True)
    assert (folder / "model.safetensors").is_file()
    return hf.eval(), folder


def test_gpt2_checkpoint_loads_through_the_rules_and_matches_hugging_face(gpt2_checkpoint) -> None:
    hf, folder = gpt2_checkpoint
    stack = TransformerStack(_gpt2_spec())
    with SafetensorsCheckpoint(folder) as ckpt:
        report = load_weights(stack, ckpt, _gpt2_rules())
    assert report.skipped == ()
    assert {f"layers.1.attention.{p}_proj.weight" for p in "qkv"} <= set(report.loaded)
    ids = torch.randint(0, VOCAB, (11,), generator=torch.Generator().manual_seed(3))
    blocks, cache = KVBlockManager(16, 4, MAX_LEN), stack.new_cache(16, 4)
    with torch.no_grad():
        expected = hf(ids[None]).logits[0]
        rows = [
            stack(ids[:8], blocks.prepare([0], [8], ExecutionMode.PREFILL, logits="all"), cache)
        ]
        for t in range(8, len(ids)):  # then decode, reading the cache the prefill wrote
            rows.append(
                stack(ids[t : t + 1], blocks.prepare([0], [1], ExecutionMode.DECODE), cache)
            )
    got = torch.cat(rows)
    error = (got - expected).abs().max().item()
    assert error < 1e-4, f"max abs logits error {error}"
    assert torch.equal(got.argmax(-1), expected.argmax(-1))


def _rewrite(folder: Path, out: Path, edit) -> Path:
    state = load_file(folder / "model.safetensors")
    edit(state)
    save_file({k: v.contiguous() for k, v in state.items()}, out / "model.safetensors")
    return out


def test_problems_after_a_transform_or_split_name_the_tensor_the_part_and_the_parameter(
    gpt2_checkpoint, tmp_path: Path
) -> None:
    _, folder = gpt2_checkpoint

    def edit(state: dict[str, torch.Tensor]) -> None:
        # layer 0: thirds of 33 rows (mis-shaped); layer 1: no equal thirds, and no biases
        # (q, k and v biases missing); layer 7: does not exist (unexpected)
        state["transformer.h.0.attn.c_attn.weight"] = torch.zeros(HIDDEN, 3 * HIDDEN + 3)
        state["transformer.h.1.attn.c_attn.weight"] = torch.zeros(HIDDEN, 3 * HIDDEN + 1)
        state["transformer.h.7.attn.c_attn.weight"] = torch.zeros(HIDDEN, 3 * HIDDEN)
        del state["transformer.h.1.attn.c_attn.bias"]

    with (
        SafetensorsCheckpoint(_rewrite(folder, tmp_path, edit)) as ckpt,
        pytest.raises(WeightMismatchError) as info,
    ):
        plan_load(TransformerStack(_gpt2_spec()), ckpt, _gpt2_rules())
    err = info.value
    part = "transformer.h.{}.attn.c_attn.weight (transpose, part {} of 3 along dim 0, as layers.{}.attention.{}_proj.weight)"
    assert sorted(err.missing) == [f"layers.1.attention.{p}_proj.bias" for p in "kqv"]
    assert sorted(err.unexpected) == sorted(
        part.format(7, i + 1, 7, p) for i, p in enumerate("qkv")
    )
    shaped = {name: (got, want) for name, got, want in err.mismatched}
    for i, p in enumerate("qkv"):
        assert shaped[part.format(0, i + 1, 0, p)] == ((HIDDEN + 1, HIDDEN), (HIDDEN, HIDDEN))
        uneven = (
            part.format(1, i + 1, 1, p)
            + f": cannot cut dim 0 of size {3 * HIDDEN + 1} into 3 equal parts"
        )
        assert shaped[uneven] == ((HIDDEN, 3 * HIDDEN + 1), (HIDDEN, HIDDEN))
    assert len(err.mismatched) == 6
    shapes = f" (checkpoint [{HIDDEN + 1}, {HIDDEN}], model [{HIDDEN}, {HIDDEN}])"
    assert part.format(0, 2, 0, "k") + shapes in str(err)


class _QKV(torch.nn.Module):
    def __init__(self, q: int, k: int, v: int, width: int) -> None:
        super().__init__()
        self.q = torch.nn.Linear(width, q, bias=False)
        self.k = torch.nn.Linear(width, k, bias=False)
        self.v = torch.nn.Linear(width, v, bias=False)


@settings(max_examples=15, deadline=None)
@given(
    sizes=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
    width=st.integers(1, 5),
    stored_transposed=st.booleans(),
)
def test_property_split_by_sizes_lands_where_slicing_says(
    tmp_path_factory, sizes, width, stored_transposed
) -> None:
    folder = tmp_path_factory.mktemp("qkv")
    fused = torch.randn(sum(sizes), width)  # [q + k + v, width], as the module wants them
    save_file(
        {"wqkv": (fused.T if stored_transposed else fused).contiguous()},
        folder / "model.safetensors",
    )
    rule = ("wqkv", Split(["q.weight", "k.weight", "v.weight"], dim=0, sizes=sizes))
    module = _QKV(*sizes, width)
    with SafetensorsCheckpoint(folder) as ckpt:
        load_weights(module, ckpt, RenameRules([(*rule, transpose) if stored_transposed else rule]))
    q, k = sizes[0], sizes[0] + sizes[1]
    assert torch.equal(module.q.weight, fused[:q])
    assert torch.equal(module.k.weight, fused[q:k])
    assert torch.equal(module.v.weight, fused[k:])


def test_rules_report_their_targets_and_reject_malformed_rules() -> None:
    rules = _gpt2_rules()
    assert rules("transformer.h.3.attn.c_attn.bias") == tuple(
        f"layers.3.attention.{p}_proj.bias" for p in "qkv"
    )
    assert rules("transformer.h.3.mlp.c_fc.weight") == "layers.3.ffn.up_proj.weight"
    assert rules("unmatched.name") == "unmatched.name"
    with pytest.raises(
        RenameRuleError, match=r"Split\.targets=\['a'\] is invalid: expected two or more"
    ):
        Split(["a"])
    with pytest.raises(
        RenameRuleError, match=r"Split\.sizes=\(1, 0\) is invalid: expected 2 positive integers"
    ):
        Split(["a", "b"], sizes=(1, 0))
    with pytest.raises(
        RenameRuleError, match=r"rules\[0\] transform=.* expected None for a skipped tensor"
    ):
        RenameRules([("x", None, transpose)])
    with pytest.raises(RenameRuleError, match=r"rules\[1\] replacement=3 is invalid"):
        RenameRules([("x", "y"), ("z", 3)])

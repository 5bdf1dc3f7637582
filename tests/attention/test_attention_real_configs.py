"""Attention at real model configurations against Hugging Face ``transformers``.

For each configuration a one-layer ``transformers`` model (real attention shapes; tiny
vocabulary and MLP, which are not under test) runs a 12-token prompt with the eager
attention implementation; hooks capture its attention layer's input and output. The
TTTv2 ``Attention`` built from the ``AttentionSpec`` the family's model project maps the
config to, with the weights its rename rules give (``families``: one mapping per
architecture, e.g. GPT-2's fused Conv1D split and transposed by ``models/gpt2``), must
reproduce that output through a paged KV cache: prefill of 8 tokens then 4 decode
steps, and chunked prefill (LONG_CONTEXT) of the whole prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import transformers
from families import layer_state, model_spec, our_state

from tttv2.blocks import Attention, PagedKVCache
from tttv2.core import MultiModeStrategy

PROMPT = 12
PREFILL = 8
TINY = {
    "vocab_size": 128,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "attn_implementation": "eager",
}


@dataclass(frozen=True)
class Case:
    name: str
    make_model: Callable[[], torch.nn.Module]
    attention: Callable[[torch.nn.Module], torch.nn.Module]  # the model's attention layer


LLAMA31_ROPE = {
    "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192,
}  # fmt: skip


def mistral(window: int) -> Case:
    return Case(
        f"mistral-7b-window-{window}",
        lambda: transformers.MistralForCausalLM(
            transformers.MistralConfig(
                hidden_size=4096,
                num_attention_heads=32,
                num_key_value_heads=8,
                head_dim=128,
                sliding_window=window,
                max_position_embeddings=32768,
                **TINY,
            )
        ),  # fmt: skip
        lambda m: m.model.layers[0].self_attn,
    )


CASES = [
    Case(
        "llama-3.1-8b",
        lambda: transformers.LlamaForCausalLM(
            transformers.LlamaConfig(
                hidden_size=4096,
                num_attention_heads=32,
                num_key_value_heads=8,
                head_dim=128,
                max_position_embeddings=131072,
                rope_parameters=LLAMA31_ROPE,
                **TINY,
            )
        ),  # fmt: skip
        lambda m: m.model.layers[0].self_attn,
    ),
    mistral(4096),
    mistral(5),  # Mistral-7B shapes with a window shorter than the prompt: HF's window semantics
    Case(
        "gpt2",
        lambda: transformers.GPT2LMHeadModel(
            transformers.GPT2Config(
                n_embd=768,
                n_head=12,
                n_positions=1024,
                vocab_size=128,
                n_layer=1,
                attn_implementation="eager",
            )
        ),  # fmt: skip
        lambda m: m.transformer.h[0].attn,
    ),
    Case(
        "qwen3-0.6b",
        lambda: transformers.Qwen3ForCausalLM(
            transformers.Qwen3Config(
                hidden_size=1024,
                num_attention_heads=16,
                num_key_value_heads=8,
                head_dim=128,
                rms_norm_eps=1e-6,
                max_position_embeddings=40960,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                **TINY,
            )
        ),  # fmt: skip
        lambda m: m.model.layers[0].self_attn,
    ),
    Case(
        "gemma-2-2b",  # logit soft-capping, scale from query_pre_attn_scalar, sliding layer
        lambda: transformers.Gemma2ForCausalLM(
            transformers.Gemma2Config(
                hidden_size=2304,
                num_attention_heads=8,
                num_key_value_heads=4,
                head_dim=256,
                query_pre_attn_scalar=256,
                attn_logit_softcapping=50.0,
                sliding_window=4096,
                layer_types=["sliding_attention"],
                max_position_embeddings=8192,
                **TINY,
            )
        ),  # fmt: skip
        lambda m: m.model.layers[0].self_attn,
    ),
    Case(
        "gemma-3-1b",  # QK-norm scaled by (1 + weight): Gemma 3 stores weight - 1
        lambda: transformers.Gemma3ForCausalLM(
            transformers.Gemma3TextConfig(
                hidden_size=1152,
                num_attention_heads=4,
                num_key_value_heads=1,
                head_dim=256,
                query_pre_attn_scalar=256,
                rms_norm_eps=1e-6,
                layer_types=["full_attention"],
                max_position_embeddings=32768,
                **TINY,
            )
        ),  # fmt: skip
        lambda m: m.model.layers[0].self_attn,
    ),
]


def hf_attention_io(case: Case) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The HF model, and its attention layer's input and output ``[PROMPT, hidden]``."""
    torch.manual_seed(0)
    model = case.make_model().eval()
    attn = case.attention(model)
    with torch.no_grad():  # make biases and QK-norm weights matter (HF initialises 0 and 1)
        for name, p in attn.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.05)
            elif "norm" in name:
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
    seen: dict[str, torch.Tensor] = {}

    def hook(module, args, kwargs, output):
        seen["x"] = (args[0] if args else kwargs["hidden_states"])[0].detach().clone()
        seen["y"] = output[0][0].detach().clone()

    handle = attn.register_forward_hook(hook, with_kwargs=True)
    with torch.no_grad():
        model(torch.randint(0, 128, (1, PROMPT), generator=torch.Generator().manual_seed(1)))
    handle.remove()
    return model, seen["x"], seen["y"]


def run(block: Attention, x: torch.Tensor, schedule: list[tuple[str, int]]) -> torch.Tensor:
    spec = block.spec
    cache = PagedKVCache.for_specs([spec], num_blocks=8, block_size=4, dtype=torch.float32)
    manager = cache.block_manager(64)
    outs, done = [], 0
    with torch.inference_mode():
        for mode, n in schedule:
            meta = manager.prepare([0], [n], mode)
            outs.append(block.run_in_mode(mode, x[done : done + n], meta, cache.layer(0)))
            done += n
    return torch.cat(outs)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_attention_matches_transformers_at_real_configs(case: Case) -> None:
    hf, x, want = hf_attention_io(case)
    spec = model_spec(hf)
    block = Attention(spec.layers[0].attention, execution_strategy=MultiModeStrategy(chunk_size=5))
    weights = layer_state(our_state(hf, spec), "layers.0.attention.")
    missing, unexpected = block.load_state_dict(weights, strict=True)
    assert not missing and not unexpected
    scale = max(1.0, want.abs().max().item())

    def check(got: torch.Tensor, what: str) -> None:
        err = (got - want).abs().max().item()
        assert err <= 2e-5 * scale, (
            f"{case.name} {what}: max abs error {err:.3g} (output scale {scale:.3g})"
        )

    stepwise = run(block, x, [("prefill", PREFILL)] + [("decode", 1)] * (PROMPT - PREFILL))
    check(stepwise, "prefill + decode")
    chunked = run(block, x, [("long_context", PROMPT)])
    check(chunked, "chunked prefill")
    block.fuse_qkv()
    fused = run(block, x, [("prefill", PROMPT)])
    check(fused, "fused qkv prefill")

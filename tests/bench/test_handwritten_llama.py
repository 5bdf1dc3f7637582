"""The hand-written baseline used by the composition benchmark must compute Llama exactly."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
from handwritten_llama import HandwrittenLlama  # noqa: E402


@pytest.mark.parametrize(
    "extra",
    [
        {"tie_word_embeddings": True},
        {
            "tie_word_embeddings": False,
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 32,
            },
        },
    ],
)
def test_handwritten_matches_transformers(tmp_path: Path, extra: dict) -> None:
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=97,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rope_theta=10000.0,
        **extra,
    )
    hf = transformers.LlamaForCausalLM(cfg).eval()
    hf.save_pretrained(tmp_path)
    ours = HandwrittenLlama(tmp_path, max_seq_len=256)
    prompt = torch.randint(0, 97, (1, 11)).tolist()[0]
    with torch.no_grad():
        ref = hf(torch.tensor([prompt])).logits[0, -1]
    got = ours.forward(torch.tensor([prompt]), 0)[0]
    assert (got - ref).abs().max().item() < 1e-4
    ref_tokens = hf.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False)[
        0, 11:
    ].tolist()
    ours = HandwrittenLlama(tmp_path, max_seq_len=256)
    assert ours.generate_greedy(prompt, 20) == ref_tokens


def test_handwritten_bf16_long_prompt_is_close_to_transformers(tmp_path: Path) -> None:
    """bf16 with a prompt long enough for the fp32 product path (>= UPCAST_MIN_ROWS rows on
    CPUs without native bf16): logits track float32 transformers as closely as
    transformers' own bf16 model does."""
    import handwritten_llama

    torch.manual_seed(1)
    cfg = transformers.LlamaConfig(
        vocab_size=101,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
    )
    hf = transformers.LlamaForCausalLM(cfg).eval()
    hf.save_pretrained(tmp_path)
    prompt = torch.randint(0, 101, (2, handwritten_llama.UPCAST_MIN_ROWS + 6))
    with torch.no_grad():
        ref = hf(prompt).logits[:, -1].double()
        hf_bf16 = hf.to(torch.bfloat16)(prompt).logits[:, -1].double()
    ours = HandwrittenLlama(tmp_path, dtype=torch.bfloat16, max_seq_len=256, max_batch=2)
    got = ours.forward(prompt, 0).double()
    assert got.shape == ref.shape
    assert (got - ref).abs().max() <= 2 * (hf_bf16 - ref).abs().max() + 1e-2
    assert torch.corrcoef(torch.stack([got.flatten(), ref.flatten()]))[0, 1] > 0.999

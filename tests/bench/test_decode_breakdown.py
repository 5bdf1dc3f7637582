"""decode_breakdown.py runs end to end on a tiny checkpoint, times every part of the step and
sets each against the bytes it must read (counted here from transformers' own model)."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
import decode_breakdown  # noqa: E402

PROMPT, WARMUP, STEPS = 9, 1, 3


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    folder = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=211, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        tie_word_embeddings=False,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(cfg).eval()
    model.save_pretrained(folder)
    return folder, model


def test_parts_and_bytes(
    tiny_llama: tuple[Path, object], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder, hf = tiny_llama
    out = tmp_path / "breakdown.json"
    argv = ["--checkpoint", str(folder), "--dtype", "float32", "--prompt-len", str(PROMPT),
            "--warmup", str(WARMUP), "--steps", str(STEPS), "--threads", "2", "--json", str(out)]  # fmt: skip
    assert decode_breakdown.main(argv) == 0
    results = json.loads(out.read_text())["results"]
    assert [r["threads"] for r in results] == [2, 1]
    cfg = hf.config
    layer_bytes = sum(p.numel() * 4 for p in hf.model.layers.parameters())
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    context = PROMPT + WARMUP + STEPS / 2  # the mean context of the timed steps
    kv = int(cfg.num_hidden_layers * 2 * cfg.num_key_value_heads * head_dim * 4 * context)
    for r in results:
        seconds = r["seconds"]
        assert set(seconds) == {"step", *decode_breakdown.PARTS}
        assert all(math.isfinite(v) for v in seconds.values())
        assert seconds["layers"] > 0 and seconds["lm head"] > 0 and seconds["step"] > 0
        assert seconds["step"] >= seconds["layers"] + seconds["lm head"]
        assert r["bytes"]["lm head"] == cfg.vocab_size * cfg.hidden_size * 4
        assert r["bytes"]["final norm"] == cfg.hidden_size * 4
        assert abs(r["bytes"]["layers"] - (layer_bytes + kv)) <= 4 * cfg.num_hidden_layers
        assert r["bandwidth_bytes_per_s"] > 0
        if r["products"] is not None:  # the native product serves these weights on this host
            assert r["products"]["lm_head_bytes"] == cfg.vocab_size * cfg.hidden_size * 4
            norms = sum(p.numel() * 4 for n, p in hf.model.layers.named_parameters() if "norm" in n)
            assert r["products"]["all_bytes"] == layer_bytes - norms
    printed = capsys.readouterr().out
    for name in (*decode_breakdown.PARTS, "whole step"):
        assert len(re.findall(rf"\n{name} +\d", printed)) == 2, name


def test_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        decode_breakdown.main(["--steps", "0"])
    assert exc.value.code == 2
    assert "--steps must be at least 1, got 0" in capsys.readouterr().err

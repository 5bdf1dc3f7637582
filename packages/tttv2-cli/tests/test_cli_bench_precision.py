"""``tttv2 bench --precision``: the preset against --dtype in one run, alternating repeats,
per-repeat ratios, and each side's roofline counting the weights as stored (int8: one byte
per weight plus a float32 scale per output channel)."""

from __future__ import annotations

import json

import pytest
import torch

from tttv2.cli.main import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_bench_int8_against_bf16(capsys, tiny_llama):
    code, out, err = run(
        capsys, "bench", "--checkpoint", str(tiny_llama.path), "--dtype", "bfloat16", "--precision", "int8",
        "--repeats", "2", "--prompt-len", "8", "--gen-len", "4", "--bandwidth-mib", "8", "--json",
    )  # fmt: skip
    assert code == 0, err
    record = json.loads(out)
    assert record["config"]["precision"] == "int8" and record["config"]["repeats"] == 2
    for side in ("baseline", "precision"):
        assert len(record[side]["runs"]) == 2
        assert record[side]["median"]["decode_tokens_per_s"] > 0
    ratios = record["per_repeat_ratio"]["decode_tokens_per_s"]
    assert len(ratios) == 2 and record["ratio"]["decode_tokens_per_s"] == pytest.approx(
        sorted(ratios)[0] / 2 + sorted(ratios)[1] / 2
    )
    paths = record["config"]["decode_path"]
    assert set(paths) == {"bfloat16", "int8"}
    # the bytes as stored: every matmul weight one byte plus 4 per output row, the rest bf16
    model = tiny_llama.load_model()
    c = tiny_llama.config
    hidden, vocab = c["hidden_size"], tiny_llama.vocab_size
    matmul_rows = matmul_elems = 0
    for name, p in model.named_parameters():
        if p.dim() == 2 and "embed" not in name and "lm_head" not in name:
            matmul_rows, matmul_elems = matmul_rows + p.shape[0], matmul_elems + p.numel()
    other = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 1)
    head = vocab * hidden + 4 * vocab  # its own int8 codes and scales (tied or not)
    roof = record["roofline"]
    assert roof["int8"]["weight_bytes"] == matmul_elems + 4 * matmul_rows + 2 * other + head
    assert roof["bfloat16"]["weight_bytes"] == 2 * (matmul_elems + other + vocab * hidden)
    assert roof["int8"]["decode_tokens_per_s"] > roof["bfloat16"]["decode_tokens_per_s"]


def test_bench_precision_table(capsys, tiny_llama):
    code, out, err = run(
        capsys, "bench", "--checkpoint", str(tiny_llama.path), "--dtype", "bfloat16", "--precision", "int8",
        "--repeats", "1", "--prompt-len", "8", "--gen-len", "2", "--bandwidth-mib", "8",
    )  # fmt: skip
    assert code == 0, err
    assert "precision int8 against bfloat16" in out
    assert (
        "weights read per step MB" in out
        and "roofline fraction" in out
        and "decode ratio per repeat" in out
    )


def test_validate_int8_preset(capsys, trained_llama):
    code, out, err = run(
        capsys, "validate", "--checkpoint", str(trained_llama), "--dtype", "float32", "--seq-len", "24",
        "--precision", "int8", "--json",
    )  # fmt: skip
    assert code == 0, err
    rep = json.loads(out)
    assert rep["weights_per_format"]["int8"] > 0
    ours = rep["comparisons"][0]
    assert all(0.99 < p < 1.0 for p in ours["layer_pcc"])  # int8 changes the numbers a little
    assert torch.isfinite(torch.tensor(rep["perplexity"]["int8"]))

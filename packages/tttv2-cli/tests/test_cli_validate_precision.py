"""``tttv2 validate --precision``: the preset's weights against the unchanged checkpoint and
transformers (per-layer PCC, top-1/top-5 agreement, perplexity), on the built-in text or
--text-file."""

from __future__ import annotations

import json

import pytest

from tttv2.cli.main import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def report(capsys, ckpt, *extra: str) -> dict:
    code, out, err = run(
        capsys,
        "validate",
        "--checkpoint",
        str(ckpt),
        "--dtype",
        "float32",
        "--seq-len",
        "24",
        "--json",
        *extra,
    )
    assert code == 0, err
    return json.loads(out)


def test_performance_preset_is_measured_against_float32_and_transformers(capsys, trained_llama):
    perf = report(capsys, trained_llama, "--precision", "performance")
    assert perf["precision"]["weights"]["w1_w3"] == "bfloat4_b"
    assert perf["weights_per_format"]["bfloat4_b"] > 0
    ours, hf = perf["comparisons"]
    assert ours["against"] == "float32" and hf["against"] == "transformers"
    # the formats change the numbers (PCC < 1) but keep the model (PCC > 0.9)
    assert all(0.9 < p < 0.99999 for p in ours["layer_pcc"])
    # our float32 equals transformers' float32, so both columns agree
    for a, b in zip(ours["layer_pcc"], hf["layer_pcc"], strict=True):
        assert abs(a - b) < 1e-4
    assert 0 <= ours["top1_agreement"] <= ours["top5_agreement"] <= 1
    ppl = perf["perplexity"]
    assert ppl["float32"] == pytest.approx(ppl["transformers"], rel=1e-4)
    assert ppl["performance"] != ppl["float32"]


def test_bf16_preset_costs_less_than_performance(capsys, trained_llama):
    bf16 = report(capsys, trained_llama, "--precision", "bf16")
    perf = report(capsys, trained_llama, "--precision", "performance")
    assert min(bf16["comparisons"][0]["layer_pcc"]) > min(perf["comparisons"][0]["layer_pcc"])


def test_text_file_and_table(capsys, trained_llama, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("Prefill processes the whole prompt at once; decode produces one token.")
    code, out, err = run(
        capsys,
        "validate",
        "--checkpoint",
        str(trained_llama),
        "--dtype",
        "float32",
        "--seq-len",
        "16",
        "--precision",
        "accuracy",
        "--text-file",
        str(text),
    )
    assert code == 0, err
    assert "vs transformers" in out and "top-5" in out and "perplexity accuracy" in out


def test_text_file_needs_precision_and_bad_preset_is_refused(capsys, trained_llama, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("hello")
    code, out, err = run(
        capsys,
        "validate",
        "--checkpoint",
        str(trained_llama),
        "--text-file",
        str(text),
    )
    assert code == 2 and "--text-file needs --precision" in err
    code, out, err = run(
        capsys,
        "validate",
        "--checkpoint",
        str(trained_llama),
        "--precision",
        "turbo",
    )
    assert code == 2 and "invalid choice: 'turbo'" in err and "performance" in err

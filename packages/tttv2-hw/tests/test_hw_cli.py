"""The tttv2-hw command: tables, JSON, forced profiles, errors."""

from __future__ import annotations

import json

import pytest

from tttv2.hw.cli import main
from tttv2.hw.params import OPS


def test_tables_for_this_machine(capsys, monkeypatch):
    monkeypatch.delenv("TTTV2_DEVICE_PROFILE", raising=False)
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "(detected)" in out and "host CPU" in out
    for op in OPS:
        assert f"\n{op} " in out
    assert "continuous_batch" in out and "paged_decode" in out


def test_json_for_a_forced_profile(capsys):
    assert (
        main(
            [
                "--json",
                "--profile",
                "tt:N300",
                "--op",
                "ffn",
                "--mode",
                "prefill",
                "--mode",
                "decode",
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["device"]["profile"] == "tt:N300"
    assert data["device"]["tenstorrent"]["arch"]["prefill_len_cutoff"] == 1024
    assert set(data["params"]) == {"ffn"} and set(data["params"]["ffn"]) == {"prefill", "decode"}
    assert data["params"]["ffn"]["decode"]["capture_graph"] is True
    assert data["params"]["ffn"]["prefill"]["prefill_row_chunk"] == 1024


def test_cuda_profile_table_shows_the_gpu(capsys):
    assert main(["--profile", "cuda:H100", "--op", "attention"]) == 0
    out = capsys.readouterr().out
    assert "sm_90, 132 SMs" in out and "torch-cuda > torch" in out


def test_params_file(tmp_path, capsys):
    f = tmp_path / "p.toml"
    f.write_text("[defaults]\nnum_threads = 5\n")
    assert main(["--json", "--params", str(f), "--op", "norm", "--mode", "decode"]) == 0
    assert json.loads(capsys.readouterr().out)["params"]["norm"]["decode"]["num_threads"] == 5


def test_unknown_profile_and_mode_exit_2_listing_names(capsys):
    assert main(["--profile", "gpu:X"]) == 2
    assert "cuda:H100" in capsys.readouterr().err
    assert main(["--mode", "turbo"]) == 2
    assert "long_context" in capsys.readouterr().err


def test_list_profiles_and_help(capsys):
    assert main(["--list-profiles"]) == 0
    assert "tt:P150x4" in capsys.readouterr().out.split()
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps the epilog
    assert exc.value.code == 0 and "--profile" in shown
    # the help names the variant tables and the environment that changes them
    assert "fp32_upcast" in shown and "avx512_bf16" in shown
    assert "TTTV2_NATIVE_EMULATE=avx512f|avx512_bf16" in shown and "TTTV2_NATIVE_KERNELS=0" in shown


def test_spec_file_gives_a_memory_plan(tmp_path, capsys):
    from hw_model_specs import llama31_8b

    f = tmp_path / "llama.json"
    f.write_text(llama31_8b().to_json())
    assert (
        main(["--profile", "cuda:L4", "--spec", str(f), "--op", "model", "--mode", "decode"]) == 0
    )
    out = capsys.readouterr().out
    assert "memory plan: cuda:L4" in out and "weights 16.06 GB" in out
    assert (
        main(
            [
                "--json",
                "--profile",
                "cuda:L4",
                "--spec",
                str(f),
                "--op",
                "model",
                "--memory-gb",
                "24",
            ]
        )
        == 0
    )
    plan = json.loads(capsys.readouterr().out)["memory_plan"]
    assert plan["weight_bytes"] == 16_060_522_496 and plan["kv_bytes_per_token"] == 131_072
    assert plan["memory_bytes"] == 24 * 10**9
    # tt profiles count the performance preset packed: 7.15 GB of weights for Llama-3.1-8B
    assert main(["--profile", "tt:N150", "--spec", str(f), "--memory-gb", "7"]) == 2
    assert "model weights need" in capsys.readouterr().err


def test_bad_spec_file(tmp_path, capsys):
    f = tmp_path / "x.json"
    f.write_text("{not json")
    assert main(["--spec", str(f)]) == 2
    assert "not a ModelSpec JSON" in capsys.readouterr().err


def test_native_kernel_status_on_cpu(capsys, monkeypatch):
    monkeypatch.setenv("TTTV2_NATIVE_KERNELS", "0")
    assert main(["--profile", "cpu", "--op", "ffn"]) == 0
    assert (
        "native kernels     none (turned off by TTTV2_NATIVE_KERNELS=0)" in capsys.readouterr().out
    )
    assert main(["--profile", "cpu", "--op", "ffn", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)["native_kernels"]
    assert set(status) == {
        "skinny_linear",
        "rms_norm",
        "paged_decode_attention",
        "decode_layer",
        "routed_experts",
    }
    assert all(
        s["available"] is False and "TTTV2_NATIVE_KERNELS" in s["reason"] for s in status.values()
    )
    assert {s["variant"] for s in status.values()} == {"portable"}  # PyTorch's kernels
    assert main(["--profile", "cuda:H100", "--op", "ffn", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["native_kernels"] is None  # CPU kernels only


def test_isa_variant_per_native_kernel_and_why(capsys, monkeypatch):
    """Under cpu:generic every kernel is the portable variant, with the profile named as
    the reason; under cpu:avx2 the AVX-512 variants are passed over because the profile
    lacks them, whatever the host CPU has."""
    monkeypatch.delenv("TTTV2_NATIVE_KERNELS", raising=False)
    assert main(["--profile", "cpu:generic", "--op", "ffn"]) == 0
    out = capsys.readouterr().out
    assert "native kernel           ISA variant  why" in out
    assert (
        "\nskinny_linear           portable     PyTorch's kernels: device profile cpu:generic"
        in out
    )
    assert "\nrms_norm                portable     " in out
    assert main(["--profile", "cpu:avx2", "--op", "ffn", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)["native_kernels"]
    skinny = status["skinny_linear"]
    assert "device profile cpu:avx2 lacks AVX-512-BF16" in skinny["passed_over"]["avx512_bf16"]
    assert "device profile cpu:avx2 lacks AVX-512" in skinny["passed_over"]["avx512f"]
    assert skinny["variant"] == ("avx2" if skinny["available"] else "portable")
    assert set(status["rms_norm"]["passed_over"]) <= {"avx2"}  # it has no AVX-512 code to pass over


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--op", "bogus"], "argument --op: invalid choice: 'bogus'"),
        (["--memory-gb", "0"], "argument --memory-gb: 0 is invalid: expected a number of GB > 0"),
        (["--memory-gb", "lots"], "argument --memory-gb: 'lots' is not a number"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_usage_errors_are_one_line_with_status_2(capsys, argv, fragment):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"tttv2-hw: error: {fragment}") and "(see 'tttv2-hw --help')" in err
    assert "usage:" not in err


def test_prog_names_the_command_in_errors_and_help(capsys):
    assert main(["--op", "bogus"], prog="tttv2 hw") == 2
    err = capsys.readouterr().err
    assert err.startswith("tttv2 hw: error: argument --op") and "(see 'tttv2 hw --help')" in err
    assert main(["--profile", "gpu:X"], prog="tttv2 hw") == 2
    assert capsys.readouterr().err.startswith("tttv2 hw: error: unknown device profile")
    with pytest.raises(SystemExit) as exc:
        main(["--help"], prog="tttv2 hw")
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("usage: tttv2 hw ")


def test_the_decode_path_is_shown(tmp_path, capsys):
    f = tmp_path / "p.toml"
    f.write_text("[defaults]\nfuse_decode_layers = false\n")
    assert main(["--json", "--params", str(f), "--op", "model", "--mode", "decode"]) == 0
    path = json.loads(capsys.readouterr().out)["decode_path"]
    assert path == {"kind": "eager", "reason": "fuse_decode_layers is off", "fuse": False}
    assert main(["--profile", "cuda:H100", "--op", "model"]) == 0
    line = [row for row in capsys.readouterr().out.splitlines() if row.startswith("decode path")]
    assert line and "no decode_layers kernel for this device" in line[0]

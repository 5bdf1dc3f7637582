"""Command-line parsing: --help on every verb, and bad option values rejected with one line
on stderr, exit status 2, nothing on stdout, before any model is loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tttv2.cli.commands import VERBS
from tttv2.cli.main import main
from tttv2.core.model_plugins import register_model_plugin, unregister_model_plugin


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, out: str, err: str, *fragments: str) -> None:
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("tttv2")
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.mark.parametrize("verb", [v for v in VERBS if v != "hw"])
def test_every_verb_has_help_explaining_each_option(capsys, verb):
    code, out, err = run_main(capsys, verb, "--help")
    assert code == 0 and err == ""
    assert f"usage: tttv2 {verb}" in out
    parser = {a.dest: a for a in _subparser(verb)._actions}
    for dest, action in parser.items():
        assert action.help, f"tttv2 {verb}: option {dest} has no help"


def test_hw_help_is_its_own_under_the_tttv2_name(capsys):
    from tttv2.hw.cli import build_parser as hw_parser

    code, out, err = run_main(capsys, "hw", "--help")
    assert code == 0 and err == ""
    assert out.startswith("usage: tttv2 hw") and "tttv2-hw" not in out
    for action in hw_parser("tttv2 hw")._actions:
        assert action.help, f"tttv2 hw: option {action.dest} has no help"


def _subparser(verb):
    from tttv2.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices[verb]


def test_top_level_help_lists_every_verb(capsys):
    code, out, _ = run_main(capsys, "--help")
    assert code == 0
    for verb in VERBS:
        assert verb in out
    text = " ".join(out.split())
    assert "2 bad input" in text and "internal error (a bug: the traceback is printed)" in text


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["generate", "--temperature", "-0.5"], "--temperature: -0.5 is invalid"),
        (["generate", "--temperature", "nan"], "--temperature: nan is invalid"),
        (["generate", "--top-p", "0"], "--top-p: 0 is invalid: expected a number in (0, 1]"),
        (["generate", "--top-p", "1.5"], "--top-p: 1.5 is invalid"),
        (["generate", "--top-k", "-1"], "--top-k: -1 is invalid"),
        (["generate", "--top-k", "two"], "--top-k: 'two' is not an integer"),
        (["generate", "--max-new-tokens", "0"], "--max-new-tokens: 0 is invalid"),
        (["generate", "--seed", "-3"], "--seed: -3 is invalid"),
        (["generate", "--seed", str(2**63)], "--seed"),
        (["generate", "--prompt-ids", "1,,2"], "--prompt-ids"),
        (["generate", "--prompt-ids", "1,-2"], "token ids must be >= 0"),
        (["generate", "--prompt", "x", "--prompt-ids", "1"], "not allowed with argument"),
        (["generate", "--dtype", "float64"], "--dtype: invalid choice"),
        (["generate", "--device", "tpu"], "--device: invalid choice"),
        (["generate", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["bench", "--batch", "0"], "--batch: 0 is invalid"),
        (["bench", "--prompt-len", "-4"], "--prompt-len"),
        (["validate"], "the following arguments are required: --checkpoint"),
        (["hw", "--op", "bogus"], "tttv2 hw: error: argument --op: invalid choice: 'bogus'"),
        (["hw", "--memory-gb", "-1"], "--memory-gb: -1 is invalid: expected a number of GB > 0"),
        (["hw", "--frobnicate"], "unrecognized arguments: --frobnicate (see 'tttv2 hw --help')"),
        (["hw", "--mode", "turbo"], "tttv2 hw: error: unknown execution mode 'turbo'"),
        (["nope"], "invalid choice: 'nope'"),
        ([], "required: VERB"),
    ],
)
def test_bad_options_are_one_line_errors(capsys, argv, fragment):
    assert_one_line_error(*run_main(capsys, *argv), fragment)


def test_unknown_strategy_fails_before_loading(capsys, tmp_path):
    code, out, err = run_main(
        capsys, "generate", "--checkpoint", str(tmp_path), "--strategy", "warp_speed"
    )
    assert_one_line_error(
        code, out, err, "unknown execution strategy 'warp_speed'", "prefill_decode"
    )


@pytest.mark.parametrize("verb", ["generate", "validate", "bench"])
def test_missing_checkpoint_folder(capsys, tmp_path, verb):
    code, out, err = run_main(capsys, verb, "--checkpoint", str(tmp_path / "absent"))
    assert_one_line_error(code, out, err, f"tttv2 {verb}: error:", "no such folder")


def test_folder_without_config(capsys, tmp_path):
    assert_one_line_error(
        *run_main(capsys, "generate", "--checkpoint", str(tmp_path)), "has no config.json"
    )


def test_unknown_architecture_lists_installed_ones(capsys, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["MambaForCausalLM"]}))
    code, out, err = run_main(capsys, "generate", "--checkpoint", str(tmp_path))
    assert_one_line_error(
        code, out, err, "unknown model architecture 'MambaForCausalLM'", "registered:"
    )


def test_logits_out_into_a_missing_folder(capsys, tmp_path):
    code, out, err = run_main(
        capsys, "generate", "--logits-out", str(tmp_path / "no" / "x.safetensors")
    )
    assert_one_line_error(code, out, err, "--logits-out")


def unwritable_folder(tmp_path):
    """A folder no file can be created in: a read-only one, or for root (whom permissions
    do not stop) Linux's /proc."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except OSError:
        return folder
    (folder / "probe").unlink()
    if os.path.isdir("/proc/self"):
        return Path("/proc")
    pytest.skip("no folder here refuses new files (root, and no /proc)")


@pytest.mark.parametrize("where", ["a folder", "an unwritable folder"])
def test_logits_out_that_cannot_be_written_fails_before_loading(capsys, tmp_path, where):
    """Checked first: the checkpoint folder has no config.json, which loading would report."""
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    if where == "a folder":
        target, fragment = tmp_path, "is a folder"
    else:
        target = unwritable_folder(tmp_path) / "logits.safetensors"
        fragment = "cannot create a file in folder"
    code, out, err = run_main(
        capsys, "generate", "--checkpoint", str(checkpoint), "--logits-out", str(target)
    )
    assert_one_line_error(code, out, err, f"tttv2 generate: error: --logits-out {target}", fragment)
    assert "config.json" not in err


def test_cuda_requested_without_a_gpu(capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, out, err = run_main(capsys, "generate", "--checkpoint", str(tmp_path), "--device", "cuda")
    assert_one_line_error(code, out, err, "--device cuda: no CUDA device")


class _Plugin:
    def load(self, checkpoint_dir, *, dtype, device, progress=None):
        raise AssertionError("not called")


def test_models_lists_plugins(capsys):
    register_model_plugin("ToyForCausalLM", _Plugin())
    try:
        code, out, _ = run_main(capsys, "models")
        assert code == 0 and "ToyForCausalLM" in out and "registered" in out
        code, out, _ = run_main(capsys, "models", "--json")
        listed = {m["architecture"]: m["plugin"] for m in json.loads(out)["models"]}
        assert code == 0 and listed["ToyForCausalLM"] == "registered"
    finally:
        unregister_model_plugin("ToyForCausalLM")


def test_hw_delegates_to_the_hardware_cli(capsys, monkeypatch):
    import types

    seen = []
    fake = types.ModuleType("tttv2.hw.cli")
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "tttv2.hw.cli", fake)
    assert main(["hw", "--json", "--help"]) == 0
    assert seen == [["--json", "--help"]]


def test_installed_command_runs_as_a_subprocess():
    """The console script's module, in a fresh interpreter: one-line error, status 2."""
    proc = subprocess.run(
        [sys.executable, "-m", "tttv2.cli.main", "generate", "--top-k", "x"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "tttv2 generate: error: argument --top-k: 'x' is not an integer (see 'tttv2 generate --help')"
    ]

"""Jobs run with tttv2-hw's ``num_threads`` (the usable cores by default, or an override in
``TTTV2_PARAMS``) unless the user chose threads with ``OMP_NUM_THREADS``; in-process,
``main`` puts torch's thread count back afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

import tttv2.cli.batch_generation as batch_generation
import tttv2.cli.generation as generation
from tttv2.cli.main import main

#: Never torch's own default (at most the machine's cores), so only the override gives it.
THREADS = (os.cpu_count() or 1) + 3


def params_file(tmp_path, threads: int):
    path = tmp_path / "params.toml"
    path.write_text(f"[model]\nnum_threads = {threads}\n")
    return path


def generate_subprocess(ckpt, env: dict[str, str]) -> dict:
    cmd = [sys.executable, "-m", "tttv2.cli.main", "generate", "--checkpoint", str(ckpt.path),
           "--prompt-ids", "1,2", "--max-new-tokens", "1", "--json"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_num_threads_from_tttv2_hw_reach_torch_unless_the_user_set_them(tiny_llama, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["TTTV2_PARAMS"] = str(params_file(tmp_path, THREADS))
    assert generate_subprocess(tiny_llama, env)["torch_threads"] == THREADS
    assert generate_subprocess(tiny_llama, env | {"OMP_NUM_THREADS": "1"})["torch_threads"] == 1


def test_threads_apply_to_the_job_only(capsys, tiny_llama, tmp_path, monkeypatch):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TTTV2_PARAMS", str(params_file(tmp_path, THREADS)))
    during = []

    class Recording(generation.LLMEngine):
        def __init__(self, *args, **kwargs):
            during.append(torch.get_num_threads())
            super().__init__(*args, **kwargs)

    # generate builds its engine in one of two places (the JSON record or the text stream)
    monkeypatch.setattr(generation, "LLMEngine", Recording)
    monkeypatch.setattr(batch_generation, "LLMEngine", Recording)
    before = torch.get_num_threads()
    argv = [
        "generate",
        "--checkpoint",
        str(tiny_llama.path),
        "--prompt-ids",
        "1,2",
        "--max-new-tokens",
        "2",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    assert during == [THREADS] and torch.get_num_threads() == before

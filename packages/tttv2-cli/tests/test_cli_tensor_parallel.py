"""``--tp N`` on a tiny Llama checkpoint, through the installed command (a subprocess: rank 0
prints from its own worker process). ``tttv2 generate --tp 2`` gives the tokens ``--tp 1``
gives, for grouped-query attention (KV heads split) and multi-query attention (the KV head
replicated); a world size that does not divide the heads is refused in one line (exit 2)
before any weight is read. The engine-level fault tests (a rank killed mid-generation) are
in tttv2-serve's tests/runtime/test_runtime_tensor_parallel.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

LLAMA = "LlamaForCausalLM"
PROMPT = "5,17,42,99,7,64"


def tttv2(*argv: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("WORLD_SIZE", None)
    return subprocess.run(
        [sys.executable, "-m", "tttv2.cli.main", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture(scope="module")
def mqa_llama(llama_plugin, tmp_path_factory):
    from tttv2.testing.hf import build_tiny_checkpoint

    return build_tiny_checkpoint(
        tmp_path_factory.mktemp("tp-mqa"), LLAMA, {"initializer_range": 0.3, "num_key_value_heads": 1}
    )


def generated(ckpt, *extra: str) -> list[int]:
    proc = tttv2(
        "generate", "--checkpoint", str(ckpt.path), "--prompt-ids", PROMPT, "--max-new-tokens", "10",
        "--device", "cpu", "--json", *extra,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["tp"] == (2 if "--tp" in extra and extra[extra.index("--tp") + 1] == "2" else 1)
    return record["generated_ids"]


@pytest.mark.parametrize("which", ["gqa", "mqa"])
def test_generate_tp2_equals_tp1(which, tiny_llama, mqa_llama):
    ckpt = tiny_llama if which == "gqa" else mqa_llama
    heads, kv = ckpt.config["num_attention_heads"], ckpt.config["num_key_value_heads"]
    assert (heads, kv) == ((4, 2) if which == "gqa" else (4, 1))
    one = generated(ckpt)
    assert len(one) >= 2
    assert generated(ckpt, "--tp", "2") == one


def test_tp_not_dividing_the_heads_is_one_line(tiny_llama):
    proc = tttv2("generate", "--checkpoint", str(tiny_llama.path), "--prompt-ids", PROMPT, "--device", "cpu", "--tp", "3")
    assert proc.returncode == 2 and proc.stdout == "", (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("tttv2 generate: error: tensor parallel:") and "cannot be sharded" in lines[0]


def test_help_explains_tp():
    for verb in ("generate", "bench", "serve"):
        proc = tttv2(verb, "--help", timeout=60)
        assert proc.returncode == 0
        text = " ".join(proc.stdout.split())
        assert "--tp N" in text and "torchrun" in text and "--tp-timeout" in text, verb

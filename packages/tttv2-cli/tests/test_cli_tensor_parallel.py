"""``--tp N`` on a tiny Llama checkpoint, in-process (the ranks are worker processes; with
--json rank 0's record is printed by the command's own process). ``tttv2 generate --tp 2`` gives the tokens ``--tp 1``
gives, for grouped-query attention (KV heads split) and multi-query attention (the KV head
replicated); a world size that does not divide the heads is refused in one line (exit 2)
before any weight is read. The engine-level fault tests (a rank killed mid-generation) are
in tttv2-serve's tests/runtime/test_runtime_tensor_parallel.py."""

from __future__ import annotations

import json

import pytest

from tttv2.cli.main import main

LLAMA = "LlamaForCausalLM"
PROMPT = "5,17,42,99,7,64"


@pytest.fixture(scope="module")
def mqa_llama(llama_plugin, tmp_path_factory):
    from tttv2.testing.hf import build_tiny_checkpoint

    return build_tiny_checkpoint(
        tmp_path_factory.mktemp("tp-mqa"),
        LLAMA,
        {"initializer_range": 0.3, "num_key_value_heads": 1},
    )


GENERATE = ("--prompt-ids", PROMPT, "--max-new-tokens", "10", "--device", "cpu", "--json")


@pytest.mark.parametrize("which", ["gqa", "mqa"])
def test_generate_tp2_equals_tp1(which, capsys, tiny_llama, mqa_llama):
    ckpt = tiny_llama if which == "gqa" else mqa_llama
    heads, kv = ckpt.config["num_attention_heads"], ckpt.config["num_key_value_heads"]
    assert (heads, kv) == ((4, 2) if which == "gqa" else (4, 1))
    assert main(["generate", "--checkpoint", str(ckpt.path), *GENERATE]) == 0
    one = json.loads(capsys.readouterr().out)
    assert one["tp"] == 1 and len(one["generated_ids"]) >= 2
    assert main(["generate", "--checkpoint", str(ckpt.path), *GENERATE, "--tp", "2"]) == 0
    two = json.loads(capsys.readouterr().out)  # rank 0's record, printed by this process
    assert two["tp"] == 2
    assert two["generated_ids"] == one["generated_ids"]


def test_tp_not_dividing_the_heads_is_one_line(capsys, tiny_llama):
    code = main(
        [
            "generate",
            "--checkpoint",
            str(tiny_llama.path),
            *GENERATE,
            "--tp",
            "3",
            "--tp-timeout",
            "60",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 2 and out == "", (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert (
        lines[0].startswith("tttv2 generate: error: tensor parallel:")
        and "cannot be sharded" in lines[0]
    )


@pytest.mark.parametrize("verb", ["generate", "bench", "serve"])
def test_help_explains_tp(verb, capsys):
    assert main([verb, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--tp N" in text and "torchrun" in text and "--tp-timeout" in text


def test_a_failed_group_is_one_line_exit_1(capsys, monkeypatch, tiny_llama):
    """What the launcher raises when a rank dies (the engine-level test kills one for real)
    reaches the user as its first line, without the rank's traceback."""
    from tttv2.cli.commands import generate
    from tttv2.hw.mesh import WorkerFailedError

    def dies(*args, **kwargs):
        raise WorkerFailedError(
            1, "died (exit code 9)", "Traceback (most recent call last):\n  ..."
        )

    monkeypatch.setattr(generate, "run_tensor_parallel", dies)
    code = main(["generate", "--checkpoint", str(tiny_llama.path), *GENERATE, "--tp", "2"])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err == "tttv2 generate: error: tensor-parallel group failed: rank 1 died (exit code 9)\n"

"""The KV cache of a job comes from tttv2-hw: blocks of its ``kv_cache`` block size (forced
profile, ``TTTV2_PARAMS``), as many as the job needs, never more than its memory plan holds;
a job that does not fit is a one-line error with exit status 2."""

from __future__ import annotations

import dataclasses
import json
import math
import os

import pytest

import tttv2.cli.generation as generation
import tttv2.hw
from tttv2.cli.main import main
from tttv2.hw import DeviceConfig, plan_memory
from tttv2.hw.memory.planner import DEFAULT_RUNTIME_FRACTION

PROMPT = ["--prompt-ids", "5,17,42"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def engines(monkeypatch):
    """``(num_blocks, block_size)`` of every engine ``tttv2 generate`` makes."""
    made = []

    class Recording(generation.LLMEngine):
        def __init__(self, model, num_blocks, **kwargs):
            made.append((num_blocks, kwargs["block_size"]))
            super().__init__(model, num_blocks, **kwargs)

    monkeypatch.setattr(generation, "LLMEngine", Recording)
    return made


def generate(capsys, ckpt, *extra: str) -> dict:
    code, out, err = run(
        capsys, "generate", "--checkpoint", str(ckpt.path), *PROMPT, "--json", *extra
    )
    assert code == 0, err
    return json.loads(out)


SETTINGS = [  # (TTTV2_DEVICE_PROFILE, TTTV2_PARAMS file, the block size tttv2-hw gives)
    (None, None, 16),  # tttv2-hw's default
    (None, "[kv_cache]\nkv_block_size = 8\n", 8),  # a user override
    ("tt:N150", None, 32),  # a forced Tenstorrent profile: tt-transformers' block size
]


def test_block_size_follows_tttv2_hw(capsys, tiny_llama, engines, monkeypatch, tmp_path):
    generated = []
    pinned = os.environ.get(
        "TTTV2_DEVICE_PROFILE"
    )  # the session's profile (tttv2-testing's plugin)
    for i, (profile, params, block) in enumerate(SETTINGS):
        monkeypatch.delenv("TTTV2_DEVICE_PROFILE", raising=False)
        monkeypatch.delenv("TTTV2_PARAMS", raising=False)
        if profile or pinned:
            monkeypatch.setenv("TTTV2_DEVICE_PROFILE", profile or pinned)
        if params:
            (tmp_path / f"params{i}.toml").write_text(params)
            monkeypatch.setenv("TTTV2_PARAMS", str(tmp_path / f"params{i}.toml"))
        record = generate(capsys, tiny_llama, "--max-new-tokens", "20")
        blocks = math.ceil((3 + 20) / block)  # what the 23-token sequence needs, no more
        assert engines[-1] == (blocks, block), (profile, params)
        assert record["kv_cache"] == {"block_size": block, "num_blocks": blocks}
        generated.append(record["generated_ids"])
    # The block size alone never changes the numbers. (The tt profile also holds the weights
    # in its precision preset's block-float formats, so its tokens are not comparable.)
    assert generated[0] == generated[1] and len(generated[0]) == 20 == len(generated[2])


def small_device(spec, kv_blocks: int) -> DeviceConfig:
    """The host CPU with just enough memory for the weights, the planner's reserve and
    ``kv_blocks`` float32 KV-cache blocks of 16 tokens (sizes from tttv2-hw's planner)."""
    cpu = DeviceConfig.auto_detect("cpu")
    probe = plan_memory(spec, device=cpu, memory_bytes=10**9, weight_dtype="float32",
                        kv_dtype="float32", block_size=16, context_len=16)  # fmt: skip
    activations = probe.reserve_bytes - int(10**9 * DEFAULT_RUNTIME_FRACTION)
    need = probe.weight_bytes + activations + (kv_blocks + 0.5) * probe.kv_bytes_per_block
    memory = math.ceil(need / (1 - DEFAULT_RUNTIME_FRACTION))
    device = dataclasses.replace(cpu, memory_total_bytes=memory, memory_available_bytes=memory)
    plan = plan_memory(
        spec,
        device=device,
        weight_dtype="float32",
        kv_dtype="float32",
        block_size=16,
        context_len=16,
    )
    assert plan.num_blocks == kv_blocks  # the premise: room for exactly that many blocks
    return device


def test_jobs_get_what_they_need_up_to_the_memory_plan(capsys, tiny_llama, engines, monkeypatch):
    from tttv2.core.model_plugins import load_model

    monkeypatch.delenv("TTTV2_PARAMS", raising=False)
    device = small_device(load_model(tiny_llama.path).spec, kv_blocks=6)  # 96 tokens
    monkeypatch.setattr(tttv2.hw, "default_device", lambda: device)
    record = generate(capsys, tiny_llama, "--max-new-tokens", "20")
    assert engines == [(2, 16)] and record["kv_cache"]["num_blocks"] == 2  # not all 6
    record = generate(capsys, tiny_llama, "--max-new-tokens", "93")  # 96 tokens: all 6 blocks
    assert engines[-1] == (6, 16) and len(record["generated_ids"]) == 93

    path = str(tiny_llama.path)
    code, out, err = run(
        capsys, "generate", "--checkpoint", path, *PROMPT, "--max-new-tokens", "94"
    )
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith(
        "tttv2 generate: error: a prompt of 3 tokens + --max-new-tokens 94: "
        "a sequence of 97 tokens does not fit in memory"
    ), err
    assert "Longest context that fits: 96 tokens" in err and "Traceback" not in err

    argv = ["bench", "--checkpoint", path, "--batch", "4", "--prompt-len", "20", "--gen-len", "12"]
    code, out, err = run(capsys, *argv)  # 4 sequences of 2 blocks: 8 > 6
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith(
        "tttv2 bench: error: --batch 4 x (--prompt-len 20 + --gen-len 12): 4 sequences of 32 "
        "tokens need 8 KV-cache blocks of 16 tokens but the memory plan for cpu holds 6 "
        "(at most 3 such sequences at once)"
    ), err

"""The built-in checkpoint (``tttv2 generate`` without ``--checkpoint``): trained on its
text, so greedy decoding continues the default prompt with varied, printable words; built
once, atomically, deterministically; never one cached by an older, untrained version."""

from __future__ import annotations

import json

import torch
from conftest import OLD_DEFAULT

from tttv2.cli.default_checkpoint import NAME, READY
from tttv2.cli.default_training import train, training_batch
from tttv2.cli.main import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_default_checkpoint_continues_the_prompt_with_varied_printable_text(
    capsys, built_default, monkeypatch
):
    monkeypatch.setenv("TTTV2_CACHE_DIR", str(built_default))
    code, out, err = run(capsys, "generate", "--json")
    assert code == 0, err
    record = json.loads(out)
    ids, text = record["generated_ids"], record["text"]
    assert len(ids) == 32 and record["finish_reason"] == "length"
    assert len(set(ids)) >= 12, ids  # not one token repeated (random weights gave 32 x 256)
    assert "\ufffd" not in text and all(c.isprintable() or c in "\n\t" for c in text), text
    # it recites the paragraph it was trained on, which opens with the default prompt
    assert text.startswith(" jumps over the lazy dog"), text
    code, out, _ = run(capsys, "generate", "--prompt", "Once upon a time", "--json")
    assert code == 0 and json.loads(out)["text"].startswith(" there was a small model")


def test_default_checkpoint_is_built_once_atomically(capsys, built_default, monkeypatch):
    monkeypatch.setenv("TTTV2_CACHE_DIR", str(built_default))
    folder = built_default / "checkpoints" / NAME
    weights = folder / "model.safetensors"
    first = weights.stat().st_mtime_ns
    code, out, err = run(capsys, "generate", "--max-new-tokens", "3", "--json")
    assert code == 0, err
    assert json.loads(out)["checkpoint"] == str(folder)
    code, out2, _ = run(capsys, "generate", "--max-new-tokens", "3", "--json")
    assert code == 0 and json.loads(out2)["generated_ids"] == json.loads(out)["generated_ids"]
    assert weights.stat().st_mtime_ns == first  # found in the cache, not built again
    folders = sorted(p.name for p in (built_default / "checkpoints").iterdir())
    assert folders == sorted([NAME, OLD_DEFAULT])  # no temporary folders left behind


def test_a_checkpoint_cached_by_an_older_version_is_not_used(built_default):
    ready = json.loads((built_default / "checkpoints" / NAME / READY).read_text())
    assert NAME != OLD_DEFAULT and ready["training"]["steps"] > 0
    assert ready["training"]["final_loss"] < 0.5


def test_training_is_deterministic_and_restores_threads_and_random_state(tiny_llama):
    tokenizer = tiny_llama.load_tokenizer()
    inputs, labels = training_batch(tokenizer, 1, ("Hello, world!", "The quick brown fox"))
    assert inputs.shape[0] == 2 and (labels == -100).sum() > 0  # padded rows, padding unlearned
    threads = torch.get_num_threads()
    rng = torch.get_rng_state()
    runs = []
    for _ in range(2):
        model = tiny_llama.load_model()
        before = model.model.norm.weight.clone()
        loss = train(model, inputs, labels, steps=3)
        assert not torch.equal(model.model.norm.weight, before)  # it did train
        runs.append((loss, {k: v.clone() for k, v in model.state_dict().items()}))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])
    assert torch.get_num_threads() == threads and torch.equal(torch.get_rng_state(), rng)

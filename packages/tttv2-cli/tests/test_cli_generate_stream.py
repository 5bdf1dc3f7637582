"""``tttv2 generate`` streams text as tokens arrive, and ``--prompts-file`` runs several
prompts through one continuous batch with results in the file's order."""

from __future__ import annotations

import json

from tttv2.cli.main import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def single_json(capsys, ckpt, ids: str, n: int) -> dict:
    code, out, err = run(
        capsys,
        "generate",
        "--checkpoint",
        str(ckpt.path),
        "--prompt-ids",
        ids,
        "--max-new-tokens",
        str(n),
        "--json",
    )
    assert code == 0, err
    return json.loads(out)


def test_text_is_written_piece_by_piece_as_tokens_arrive(capsys, tiny_llama, monkeypatch) -> None:
    import sys

    writes: list[str] = []
    real_write = sys.stdout.write
    monkeypatch.setattr(sys.stdout, "write", lambda text: writes.append(text) or real_write(text))
    code, out, err = run(
        capsys,
        "generate",
        "--checkpoint",
        str(tiny_llama.path),
        "--prompt-ids",
        "1,2,3",
        "--max-new-tokens",
        "6",
    )
    assert code == 0, err
    pieces = [w for w in writes if w and w != "\n"]
    record = single_json(capsys, tiny_llama, "1,2,3", 6)
    assert out == record["text"] + "\n"
    assert (
        len(pieces) >= 2 and "".join(pieces) == record["text"]
    )  # several writes, not one at the end


def test_prompts_file_runs_every_prompt_in_one_batch_in_file_order(
    capsys, tiny_llama, tmp_path
) -> None:
    lines = [
        {"prompt_ids": [1, 2, 3], "max_new_tokens": 5, "id": "a"},
        "The fox",
        {"prompt_ids": [4, 5], "max_new_tokens": 2},
        {"prompt": "jumps over", "max_new_tokens": 7, "id": 9},
    ]
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    code, out, err = run(
        capsys,
        "generate",
        "--checkpoint",
        str(tiny_llama.path),
        "--prompts-file",
        str(path),
        "--max-new-tokens",
        "4",
        "--max-num-seqs",
        "2",
        "--json",
    )
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["index"] for r in records] == [0, 1, 2, 3] and [r["id"] for r in records] == [
        "a",
        None,
        None,
        9,
    ]
    tokenizer = tiny_llama.load_tokenizer()
    assert records[1]["prompt_ids"] == tokenizer.encode("The fox").ids
    # greedy: each result is what the prompt gets alone
    for r, n in zip(records, (5, 4, 2, 7), strict=True):
        alone = single_json(capsys, tiny_llama, ",".join(map(str, r["prompt_ids"])), n)
        assert r["generated_ids"] == alone["generated_ids"] and r["text"] == alone["text"]
    code, out, _ = run(
        capsys, "generate", "--checkpoint", str(tiny_llama.path), "--prompts-file", str(path)
    )
    assert code == 0 and out.startswith("[a] ") and "\n[9] " in out  # texts may hold newlines


def test_bad_prompts_files_are_one_line_errors(capsys, tiny_llama, tmp_path) -> None:
    cases = {
        "not json": "{oops\n",
        "neither prompt nor prompt_ids": '{"text": "x"}\n',
        "bad max_new_tokens": '{"prompt_ids": [1], "max_new_tokens": 0}\n',
        "empty": "\n",
    }
    for name, text in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.jsonl"
        path.write_text(text)
        code, out, err = run(
            capsys, "generate", "--checkpoint", str(tiny_llama.path), "--prompts-file", str(path)
        )
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, (name, err)
        assert "--prompts-file" in err, (name, err)

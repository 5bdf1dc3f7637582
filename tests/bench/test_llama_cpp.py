"""The llama.cpp part of bench_model.py (tools/bench/llama_cpp.py) without llama.cpp: small
fake ``llama-bench`` and converter scripts written here record the command lines they get
and print what the real tools print, so parsing, command lines, caching and the one-line
errors are checked in CI."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
import llama_cpp  # noqa: E402

# what `llama-bench -p 512 -n 32 -d 0,128 -o json` prints (fields trimmed), values distinct
# so that picking the wrong test shows
TESTS = [
    {"build_commit": "abc1234", "cpu_info": "AMD EPYC 7B13", "n_threads": 2, "n_prompt": 512, "n_gen": 0,
     "n_depth": 0, "avg_ts": 401.5, "samples_ts": [400.0, 403.0]},
    {"build_commit": "abc1234", "cpu_info": "AMD EPYC 7B13", "n_threads": 2, "n_prompt": 512, "n_gen": 0,
     "n_depth": 128, "avg_ts": 350.0, "samples_ts": [350.0]},
    {"build_commit": "abc1234", "cpu_info": "AMD EPYC 7B13", "n_threads": 2, "n_prompt": 0, "n_gen": 32,
     "n_depth": 0, "avg_ts": 61.0, "samples_ts": [61.0]},
    {"build_commit": "abc1234", "cpu_info": "AMD EPYC 7B13", "n_threads": 2, "n_prompt": 0, "n_gen": 32,
     "n_depth": 128, "avg_ts": 55.5, "samples_ts": [55.0, 56.0]},
]  # fmt: skip


def fake_tool(path: Path, body: str) -> Path:
    """An executable Python script at ``path`` that appends its argv to ``path.argv`` and then
    runs ``body``."""
    path.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(path) + '.argv'!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n{body}\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def calls(tool: Path) -> list[list[str]]:
    argv = Path(str(tool) + ".argv")
    return [json.loads(line) for line in argv.read_text().splitlines()] if argv.exists() else []


def test_bench_command_and_parsing(tmp_path: Path) -> None:
    binary = fake_tool(tmp_path / "llama-bench", f"print(json.dumps({TESTS!r}, indent=2))")
    command = llama_cpp.bench_command(binary, tmp_path / "m.gguf", 2, 512, 32, 128, 3)
    result = llama_cpp.run_bench(command, 512, 32, 128)
    assert calls(binary) == [
        [
            "-m",
            str(tmp_path / "m.gguf"),
            "-t",
            "2",
            "-p",
            "512",
            "-n",
            "32",
            "-d",
            "0,128",
            "-r",
            "3",
            "-o",
            "json",
        ]
    ]
    assert result.prefill_tokens_per_s == 401.5  # pp512 at depth 0, not at 128
    assert result.decode_tokens_per_s == 55.5  # tg32 after 128 tokens of context, not at 0
    assert result.prefill_samples == [400.0, 403.0] and result.decode_samples == [55.0, 56.0]
    assert (result.build_commit, result.cpu_info, result.n_threads) == (
        "abc1234",
        "AMD EPYC 7B13",
        2,
    )


def test_depth_zero_asks_for_one_depth() -> None:
    command = llama_cpp.bench_command(Path("lb"), Path("m.gguf"), 4, 64, 4, 0, 1)
    assert command[command.index("-d") + 1] == "0"


def test_summary_is_the_median_over_both_runs_samples() -> None:
    before = llama_cpp.parse_bench_json(json.dumps(TESTS), 512, 32, 128)
    after = llama_cpp.LlamaBenchResult(300.0, 45.0, [300.0], [45.0])
    summary = llama_cpp.summary([before, after])
    assert summary["prefill_tokens_per_s"] == 400.0  # median of 400, 403, 300
    assert summary["decode_b1_tokens_per_s"] == 55.0  # median of 55, 56, 45
    assert len(summary["runs"]) == 2


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        ("build: abc (1)\n| model | size |", "not JSON"),
        (json.dumps({"n_prompt": 512}), "not a JSON list"),
        (json.dumps(TESTS[2:]), "no test with n_prompt=512 n_gen=0 n_depth=0"),
        (json.dumps(TESTS[:3]), "no test with n_prompt=0 n_gen=32 n_depth=128"),
        (json.dumps([{**TESTS[0], "avg_ts": "fast"}, *TESTS[1:]]), "no numeric avg_ts"),
    ],
)
def test_unparseable_output_is_one_line(stdout: str, message: str) -> None:
    with pytest.raises(llama_cpp.LlamaCppError, match=message) as err:
        llama_cpp.parse_bench_json(stdout, 512, 32, 128)
    assert "\n" not in str(err.value)


def test_failing_llama_bench_shows_its_last_stderr_lines(tmp_path: Path) -> None:
    binary = fake_tool(
        tmp_path / "llama-bench",
        "print('loading', file=sys.stderr)\nprint('error: failed to load model', file=sys.stderr)\nsys.exit(3)",
    )
    command = llama_cpp.bench_command(binary, tmp_path / "m.gguf", 2, 512, 32, 128, 3)
    with pytest.raises(
        llama_cpp.LlamaCppError, match=r"failed \(exit 3\): loading \| error: failed to load model"
    ):
        llama_cpp.run_bench(command, 512, 32, 128)


def test_binary_missing_or_not_executable(tmp_path: Path) -> None:
    with pytest.raises(llama_cpp.LlamaCppError, match="no such file"):
        llama_cpp.check_binary(tmp_path / "nope")
    with pytest.raises(llama_cpp.LlamaCppError, match="not a file"):
        llama_cpp.check_binary(tmp_path)
    plain = tmp_path / "llama-bench"
    plain.write_text("")
    plain.chmod(0o644)
    if os.access(plain, os.X_OK):  # root may execute anything with an x bit; 0o644 has none
        pytest.fail("a 0o644 file is executable here")
    with pytest.raises(llama_cpp.LlamaCppError, match="not executable"):
        llama_cpp.check_binary(plain)
    plain.chmod(0o755)
    assert llama_cpp.check_binary(plain) == plain


def test_converter_is_found_above_the_binary_or_in_the_given_dir(tmp_path: Path) -> None:
    checkout = tmp_path / "llama.cpp"
    (checkout / "build" / "bin").mkdir(parents=True)
    binary = checkout / "build" / "bin" / "llama-bench"
    with pytest.raises(llama_cpp.LlamaCppError, match="convert_hf_to_gguf.py not found above"):
        llama_cpp.find_converter(binary, None)
    (checkout / llama_cpp.CONVERTER).write_text("")
    assert llama_cpp.find_converter(binary, None) == checkout / llama_cpp.CONVERTER
    with pytest.raises(llama_cpp.LlamaCppError, match="--llama-cpp-dir"):
        llama_cpp.find_converter(binary, tmp_path / "elsewhere")
    assert (
        llama_cpp.find_converter(Path("/x/llama-bench"), checkout) == checkout / llama_cpp.CONVERTER
    )


def checkpoint(tmp_path: Path, vocab_size: int = 400) -> Path:
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"vocab_size": vocab_size, "model_type": "llama"})
    )
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


def test_convert_runs_the_converter_once_and_caches_the_gguf_beside_the_checkpoint(
    tmp_path: Path,
) -> None:
    folder = checkpoint(tmp_path)
    # the fake converter checks what the real one reads, then writes --outfile
    converter = fake_tool(
        tmp_path / "convert_hf_to_gguf.py",
        "from pathlib import Path\nsrc = Path(sys.argv[1])\n"
        "assert (src / 'model.safetensors').read_bytes() == b'weights'\n"
        "assert json.loads((src / 'config.json').read_text())['vocab_size'] == 400\n"
        "assert len(json.loads((src / 'tokenizer.json').read_text())['model']['vocab']) == 400\n"
        "Path(sys.argv[sys.argv.index('--outfile') + 1]).write_bytes(b'GGUF')",
    )
    gguf = llama_cpp.convert(folder, converter, sys.executable)
    assert gguf == tmp_path / "tiny.bf16.gguf" and gguf.read_bytes() == b"GGUF"
    (argv,) = calls(converter)
    assert argv[1:] == ["--outtype", "bf16", "--outfile", str(tmp_path / "tiny.bf16.gguf.partial")]
    assert not Path(argv[0]).exists()  # the staging folder is removed
    assert llama_cpp.convert(folder, converter, sys.executable) == gguf
    assert len(calls(converter)) == 1  # cached


def test_failing_converter_shows_its_last_stderr_lines_and_leaves_no_gguf(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path)
    converter = fake_tool(
        tmp_path / "convert_hf_to_gguf.py",
        "print('Traceback', file=sys.stderr)\nprint(\"ModuleNotFoundError: No module named 'sentencepiece'\", "
        "file=sys.stderr)\nsys.exit(1)",
    )
    with pytest.raises(
        llama_cpp.LlamaCppError, match="failed \\(exit 1\\): Traceback \\| ModuleNotFoundError"
    ) as err:
        llama_cpp.convert(folder, converter, sys.executable)
    assert "\n" not in str(err.value)
    assert not llama_cpp.gguf_path(folder).exists()
    with pytest.raises(
        llama_cpp.LlamaCppError, match="cannot run the converter with --llama-python"
    ):
        llama_cpp.convert(folder, converter, str(tmp_path / "no-python"))


def test_placeholder_tokenizer_is_a_llama_bpe_vocabulary_of_exactly_vocab_size(
    tmp_path: Path,
) -> None:
    """What llama.cpp's converter needs (gguf-py's LlamaHfVocab): a fast tokenizer, BPE with
    byte fallback and a Sequence decoder, and as many tokens as the embedding has rows."""
    transformers = pytest.importorskip("transformers")
    stage = llama_cpp.stage_for_converter(checkpoint(tmp_path, 1000), tmp_path / "stage")
    spec = json.loads((stage / "tokenizer.json").read_text())
    assert spec["model"]["type"] == "BPE" and spec["model"]["byte_fallback"] is True
    assert spec["decoder"]["type"] == "Sequence"
    tok = transformers.AutoTokenizer.from_pretrained(stage, local_files_only=True)
    assert tok.is_fast
    assert len(tok.get_vocab()) == 1000
    assert sorted(tok.get_vocab().values()) == list(range(1000))
    assert tok.convert_tokens_to_ids("<0x41>") == 3 + 0x41
    with pytest.raises(llama_cpp.LlamaCppError, match="vocab_size 100"):
        llama_cpp.placeholder_tokenizer(100)


def test_bench_model_refuses_a_missing_llama_bench_before_measuring(tmp_path: Path, capsys) -> None:
    bench_model = pytest.importorskip("bench_model")
    argv = ["--shapes", "smollm2-135m", "--dtypes", "bfloat16", "--cache-dir", str(tmp_path / "cache"),
            "--llama-bench", str(tmp_path / "nope")]  # fmt: skip
    assert bench_model.main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: --llama-bench {tmp_path / 'nope'}: no such file "
                                        "(build llama-bench from ggml-org/llama.cpp first)"]  # fmt: skip
    assert not (tmp_path / "cache" / "smollm2-135m").exists()  # nothing was built or measured


def test_bench_model_prints_ours_over_llama_cpp_beside_ours_over_hf(capsys) -> None:
    bench_model = pytest.importorskip("bench_model")
    lc = llama_cpp.summary([llama_cpp.parse_bench_json(json.dumps(TESTS), 512, 32, 128)])
    result = {
        "median": {"ours": {"prefill_tokens_per_s": 803.0, "decode_b1_tokens_per_s": 27.75}},
        "ratio": {"ours/hf": {"prefill_tokens_per_s": 1.5, "decode_b1_tokens_per_s": 3.25}},
        "llama_cpp": lc,
        "ratio_llama_cpp": {
            "ours/llama.cpp": {"prefill_tokens_per_s": 2.0, "decode_b1_tokens_per_s": 0.5}
        },
    }
    bench_model.print_llama_cpp(result)
    out = capsys.readouterr().out.splitlines()
    assert "abc1234" in out[1] and "AMD EPYC 7B13" in out[1] and "2 threads" in out[1]
    assert out[2].split() == ["ours", "llama.cpp", "ours/llama.cpp", "ours/hf"]
    assert out[3].split() == ["prefill", "tok/s", "803.00", "401.50", "2.00x", "1.50x"]
    assert out[4].split() == ["decode", "b1", "tok/s", "27.75", "55.50", "0.50x", "3.25x"]

"""llama.cpp beside us: the benchmark checkpoint as a GGUF, measured by ``llama-bench``.

Optional part of ``bench_model.py`` (``--llama-bench PATH``). Nothing of llama.cpp is part
of this repository: whoever runs it builds ``llama-bench`` from ggml-org/llama.cpp's own
instructions (``cmake -B build && cmake --build build --config Release --target
llama-bench``) and points ``--llama-bench`` at the binary. The same random checkpoint that
the other contenders load is converted to a bf16 GGUF by llama.cpp's own converter
(``convert_hf_to_gguf.py`` in that checkout) and cached beside the checkpoint.

The random checkpoint has no tokenizer, and the converter wants one: a placeholder Llama
(SentencePiece-style BPE) vocabulary of exactly ``vocab_size`` tokens is written into a
staging folder that links the checkpoint's own files. ``llama-bench`` feeds random token ids
and never tokenizes text, so the vocabulary's content does not matter, only its size.

``llama-bench`` measures prefill (``-p``, "pp") at depth 0 and decode at batch 1 (``-n``,
"tg") after ``-d`` tokens of context: the same prompt lengths as ours (prefill of
``--prefill-len``; ``--gen-len - 1`` decode steps after ``--prompt-len`` prompt tokens).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONVERTER = "convert_hf_to_gguf.py"
STDERR_LINES = 8  # how much of a failing tool's stderr the error message shows


class LlamaCppError(RuntimeError):
    """A one-line reason why the llama.cpp comparison cannot run."""


@dataclass(frozen=True)
class LlamaBenchResult:
    """One ``llama-bench`` run: prefill and decode tokens/s (its ``avg_ts``) and samples."""

    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    prefill_samples: list[float] = field(default_factory=list)
    decode_samples: list[float] = field(default_factory=list)
    build_commit: str = ""
    cpu_info: str = ""
    n_threads: int = 0


# -- locating the tools -----------------------------------------------------------------
def check_binary(path: Path) -> Path:
    """``path`` when it is an executable file, else a LlamaCppError saying what is wrong."""
    if not path.exists():
        raise LlamaCppError(
            f"--llama-bench {path}: no such file (build llama-bench from ggml-org/llama.cpp first)"
        )
    if not path.is_file():
        raise LlamaCppError(f"--llama-bench {path}: not a file")
    if not os.access(path, os.X_OK):
        raise LlamaCppError(f"--llama-bench {path}: not executable")
    return path


def find_converter(binary: Path, llama_cpp_dir: Path | None) -> Path:
    """llama.cpp's ``convert_hf_to_gguf.py``: in ``llama_cpp_dir`` when given, else in the
    checkout the binary was built in (``DIR/build/bin/llama-bench`` -> ``DIR``)."""
    candidates = (
        [llama_cpp_dir] if llama_cpp_dir is not None else list(binary.resolve().parents)[:4]
    )
    for folder in candidates:
        if (folder / CONVERTER).is_file():
            return folder / CONVERTER
    where = f"in {llama_cpp_dir}" if llama_cpp_dir is not None else f"above {binary}"
    raise LlamaCppError(
        f"{CONVERTER} not found {where}: pass --llama-cpp-dir, the llama.cpp checkout"
    )


# -- conversion -------------------------------------------------------------------------
def gguf_path(checkpoint: Path) -> Path:
    """Where the GGUF of ``checkpoint`` is cached: beside it, ``NAME.bf16.gguf``."""
    return checkpoint.with_name(checkpoint.name + ".bf16.gguf")


def placeholder_tokenizer(vocab_size: int) -> dict[str, Any]:
    """A Llama-2-style ``tokenizer.json`` (BPE with byte fallback, no merges) of exactly
    ``vocab_size`` tokens: ``<unk> <s> </s>``, the 256 byte tokens, then fillers."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    if vocab_size < len(tokens):
        raise LlamaCppError(
            f"vocab_size {vocab_size} is below the {len(tokens)} tokens a Llama vocabulary needs"
        )
    tokens += [f"\u2581t{i}" for i in range(vocab_size - len(tokens))]
    special = [
        {
            "id": i,
            "content": t,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, t in enumerate(tokens[:3])
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": special,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"}, {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens)}, "merges": []},
    }  # fmt: skip


def stage_for_converter(checkpoint: Path, stage: Path) -> Path:
    """A folder the converter can read: links to ``checkpoint``'s config and weights plus a
    placeholder tokenizer of the config's ``vocab_size``."""
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for f in checkpoint.iterdir():
        if f.suffix in (".json", ".safetensors"):
            (stage / f.name).symlink_to(f.resolve())
    vocab_size = json.loads((checkpoint / "config.json").read_text())["vocab_size"]
    (stage / "tokenizer.json").write_text(json.dumps(placeholder_tokenizer(vocab_size)))
    (stage / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizerFast", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "add_bos_token": True, "add_eos_token": False, "model_max_length": 1 << 30}))  # fmt: skip
    return stage


def convert_command(python: str, converter: Path, stage: Path, out: Path) -> list[str]:
    return [python, str(converter), str(stage), "--outtype", "bf16", "--outfile", str(out)]


def convert(checkpoint: Path, converter: Path, python: str) -> Path:
    """The bf16 GGUF of ``checkpoint`` (converted once by llama.cpp's converter, then reused)."""
    out = gguf_path(checkpoint)
    if out.is_file():
        return out
    stage = stage_for_converter(checkpoint, checkpoint.with_name(checkpoint.name + ".gguf-src"))
    partial = out.with_name(out.name + ".partial")
    try:
        done = subprocess.run(
            convert_command(python, converter, stage, partial), capture_output=True, text=True
        )
    except OSError as e:
        raise LlamaCppError(f"cannot run the converter with --llama-python {python}: {e}") from None
    shutil.rmtree(stage, ignore_errors=True)
    if done.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise LlamaCppError(f"{converter} failed (exit {done.returncode}): {_tail(done.stderr)}")
    partial.rename(out)
    return out


# -- llama-bench ------------------------------------------------------------------------
def bench_command(binary: Path, gguf: Path, threads: int, prefill_len: int, decode_steps: int, depth: int,
                  repetitions: int) -> list[str]:  # fmt: skip
    """``llama-bench``: prefill of ``prefill_len`` at depth 0, ``decode_steps`` decode tokens
    after ``depth`` tokens of context (``-d 0,depth``; the pp at ``depth`` is not used)."""
    depths = "0" if depth == 0 else f"0,{depth}"
    return [str(binary), "-m", str(gguf), "-t", str(threads), "-p", str(prefill_len), "-n", str(decode_steps),
            "-d", depths, "-r", str(repetitions), "-o", "json"]  # fmt: skip


def parse_bench_json(
    text: str, prefill_len: int, decode_steps: int, depth: int
) -> LlamaBenchResult:
    """The prefill (``n_prompt == prefill_len``, depth 0) and decode (``n_gen ==
    decode_steps`` at ``depth``) tests of ``llama-bench -o json`` output."""
    try:
        tests = json.loads(text)
    except json.JSONDecodeError as e:
        raise LlamaCppError(
            f"llama-bench output is not JSON ({e.msg} at line {e.lineno}): {_tail(text, 2)}"
        ) from None
    if not isinstance(tests, list) or not all(isinstance(t, dict) for t in tests):
        raise LlamaCppError("llama-bench output is not a JSON list of tests")

    def pick(n_prompt: int, n_gen: int, n_depth: int) -> dict[str, Any]:
        for t in tests:
            if (t.get("n_prompt"), t.get("n_gen"), t.get("n_depth", 0)) == (
                n_prompt,
                n_gen,
                n_depth,
            ):
                if not isinstance(t.get("avg_ts"), (int, float)):
                    raise LlamaCppError(
                        f"llama-bench test pp{n_prompt} tg{n_gen} has no numeric avg_ts"
                    )
                return t
        raise LlamaCppError(
            f"llama-bench output has no test with n_prompt={n_prompt} n_gen={n_gen} n_depth={n_depth}"
        )

    pp, tg = pick(prefill_len, 0, 0), pick(0, decode_steps, depth)
    return LlamaBenchResult(
        prefill_tokens_per_s=float(pp["avg_ts"]),
        decode_tokens_per_s=float(tg["avg_ts"]),
        prefill_samples=[float(x) for x in pp.get("samples_ts", [])],
        decode_samples=[float(x) for x in tg.get("samples_ts", [])],
        build_commit=str(pp.get("build_commit", "")),
        cpu_info=str(pp.get("cpu_info", "")),
        n_threads=int(pp.get("n_threads", 0)),
    )


def run_bench(
    command: Sequence[str], prefill_len: int, decode_steps: int, depth: int
) -> LlamaBenchResult:
    """Run ``command`` (from :func:`bench_command`) and parse what it printed."""
    try:
        done = subprocess.run(list(command), capture_output=True, text=True)
    except OSError as e:
        raise LlamaCppError(f"cannot run {command[0]}: {e}") from None
    if done.returncode != 0:
        raise LlamaCppError(f"{command[0]} failed (exit {done.returncode}): {_tail(done.stderr)}")
    return parse_bench_json(done.stdout, prefill_len, decode_steps, depth)


def summary(runs: Sequence[LlamaBenchResult]) -> dict[str, Any]:
    """Medians over the runs' samples (each run's ``avg_ts`` when it printed none)."""
    pp = [s for r in runs for s in (r.prefill_samples or [r.prefill_tokens_per_s])]
    tg = [s for r in runs for s in (r.decode_samples or [r.decode_tokens_per_s])]
    return {
        "prefill_tokens_per_s": statistics.median(pp),
        "decode_b1_tokens_per_s": statistics.median(tg),
        "runs": [vars(r) for r in runs],
        "build_commit": runs[0].build_commit,
        "cpu_info": runs[0].cpu_info,
        "n_threads": runs[0].n_threads,
    }


def _tail(text: str, lines: int = STDERR_LINES) -> str:
    kept = [line.strip() for line in text.strip().splitlines()[-lines:] if line.strip()]
    return " | ".join(kept) or "(no output)"

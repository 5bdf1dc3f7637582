"""``tttv2 generate``: continue a prompt with a model loaded from a checkpoint folder."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from tttv2.cli import options
from tttv2.cli.batch_generation import PromptLine, generate_many, read_prompts_file, stream_one
from tttv2.cli.default_checkpoint import DEFAULT_CHECKPOINT_NOTE, default_checkpoint
from tttv2.cli.errors import UsageError
from tttv2.cli.forward import prompt_logits
from tttv2.cli.generation import Generation, generate
from tttv2.cli.hardware import apply_num_threads, device_config
from tttv2.cli.kv_pool import plan_kv_pool
from tttv2.cli.loading import DTYPES, build_native_kernels, load, resolve_device
from tttv2.cli.output_file import check_output_file
from tttv2.cli.progress import Bar, progress_enabled
from tttv2.cli.prompt import DEFAULT_PROMPT, prompt_ids
from tttv2.cli.tensor_parallel import add_tp_options, run_tensor_parallel, tp_size
from tttv2.serve.runtime import RequestOutput, SamplingParams

if TYPE_CHECKING:
    from tttv2.core.model_plugins import LoadedModel
    from tttv2.hw import DeviceConfig


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "generate",
        help="generate text from a prompt",
        description="Load a Hugging Face checkpoint through its model plugin and continue a prompt "
        "with tttv2.serve.runtime (greedy by default; sampling with --temperature). Prints the "
        "generated text on stdout as the tokens arrive and timings on stderr, or one JSON object "
        "with --json. --prompts-file runs many prompts together through the engine's continuous "
        "batch and prints one result per prompt, in the file's order (one JSON object per line "
        "with --json). On the "
        "first use of a CPU, tttv2-hw's native kernels are compiled before generating (a few "
        "seconds, reported apart as warm-up; later runs load them from $TTTV2_CACHE_DIR).",
    )
    options.add_checkpoint(p, required=False, default_note=DEFAULT_CHECKPOINT_NOTE)
    prompt = p.add_mutually_exclusive_group()
    prompt.add_argument(
        "--prompt",
        metavar="TEXT",
        help=f"prompt text, encoded with the checkpoint's tokenizer.json (default: {DEFAULT_PROMPT!r})",
    )
    prompt.add_argument(
        "--prompt-ids",
        type=options.token_ids,
        metavar="1,2,3",
        help="the prompt as comma-separated token ids (used as given, no tokenizer needed)",
    )
    prompt.add_argument(
        "--prompts-file",
        type=Path,
        metavar="FILE",
        help="JSON lines, one prompt per line: a string (the text), or an object with 'prompt' "
        "(text) or 'prompt_ids' (token ids), optionally 'max_new_tokens' and 'id' (echoed back); "
        "all run through one continuous batch",
    )
    p.add_argument(
        "--max-num-seqs",
        type=options.int_at_least(1),
        default=16,
        metavar="N",
        help="with --prompts-file: prompts generating at once in the batch (default: %(default)s)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=options.int_at_least(1),
        default=32,
        metavar="N",
        help="generate at most N tokens; fewer when the model emits an end-of-sequence token or the "
        "context is full (default: %(default)s)",
    )
    p.add_argument(
        "--temperature",
        type=options.float_in(0.0, float("inf"), hint="a finite number >= 0"),
        default=0.0,
        metavar="T",
        help="sampling temperature; 0 picks the most likely token every step (greedy) "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--top-k",
        type=options.int_at_least(0),
        default=0,
        metavar="K",
        help="sample only among the K most likely tokens; 0 turns it off (default: %(default)s)",
    )
    p.add_argument(
        "--top-p",
        type=options.float_in(0.0, 1.0, low_open=True, hint="a number in (0, 1]"),
        default=1.0,
        metavar="P",
        help="sample only among the most likely tokens whose probabilities add up to P; 1 turns "
        "it off (default: %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=options.seed,
        default=None,
        metavar="S",
        help="random seed for sampling: the same seed gives the same tokens (default: random)",
    )
    options.add_model_options(p)
    add_tp_options(
        p,
        timeout_default=300.0,
        timeout_note=" (a rank that dies is noticed at once: the command prints one line and exits 1)",
    )
    options.add_json(
        p,
        "prompt_ids, generated_ids, text, finish_reason, ttft_s, decode_tokens_per_s, kv_cache "
        "(block_size, num_blocks) and torch_threads",
    )
    p.add_argument(
        "--logits-out",
        type=Path,
        metavar="FILE",
        help="also write a safetensors file whose tensor 'logits' holds float32 logits for every "
        "prompt position (shape [prompt_len, vocab])",
    )


def run(args: argparse.Namespace) -> int:
    if args.prompts_file is not None and args.logits_out is not None:
        raise UsageError("--logits-out takes one prompt; it cannot be combined with --prompts-file")
    if args.logits_out is not None:  # before anything is loaded or computed
        check_output_file(args.logits_out, "--logits-out")
    sampling_params(args)  # checked before loading
    device = resolve_device(args.device)
    hw = device_config(device)
    apply_num_threads(hw)
    show = progress_enabled(args.json)
    checkpoint = (
        args.checkpoint if args.checkpoint is not None else default_checkpoint(show_progress=show)
    )
    if tp_size(args) > 1:  # rank 0 runs generate_loaded; the others follow its passes
        return run_tensor_parallel(args, checkpoint, device, generate_loaded)
    loaded = load(
        checkpoint,
        args.dtype,
        device,
        args.strategy,
        show_progress=show,
        capture_decode=True,
        allow_nonfinite_weights=args.allow_nonfinite_weights,
    )
    return generate_loaded(args, loaded, checkpoint, device)


def sampling_params(args: argparse.Namespace) -> SamplingParams:
    return SamplingParams(
        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed
    )


def generate_loaded(
    args: argparse.Namespace, loaded: LoadedModel, checkpoint: Path, device: torch.device
) -> int:
    """Everything after loading (with --tp: on rank 0, the model driving the other ranks)."""
    sampling = sampling_params(args)
    hw = device_config(device)
    show = progress_enabled(args.json)
    if args.prompts_file is not None:
        return run_prompts_file(args, loaded, sampling, device, hw, show)
    ids = prompt_ids(loaded, args.prompt, args.prompt_ids)
    pool = plan_kv_pool(
        loaded.spec,
        hw,
        DTYPES[args.dtype],
        seq_len=min(len(ids) + args.max_new_tokens, loaded.max_context),
        job=f"a prompt of {len(ids)} tokens + --max-new-tokens {args.max_new_tokens}",
    )
    with Bar(show, None, "native kernels (compiled on first use)", unit="kernel"):
        compile_s = build_native_kernels(device)
    logits = (
        prompt_logits(loaded.model, ids, device, pool.block_size)
        if args.logits_out is not None
        else None
    )
    if not args.json:  # text: streamed to stdout as the tokens arrive
        output = stream_one(
            loaded, ids, sampling, args.max_new_tokens, device=device, pool=pool, write=write_now
        )
        print(flush=True)
        result = generation_of(ids, output)
    else:
        with Bar(show, args.max_new_tokens, "generating", unit="tok") as bar:
            result = generate(
                loaded,
                ids,
                sampling,
                args.max_new_tokens,
                device=device,
                on_token=bar.update_to,
                pool=pool,
            )
    if logits is not None:  # written only once everything else has worked: no partial output
        write_logits(args.logits_out, logits)
    if args.json:
        record = {
            "checkpoint": str(checkpoint),
            "prompt_ids": result.prompt_ids,
            "generated_ids": result.generated_ids,
            "text": result.text,
            "finish_reason": result.finish_reason,
            "ttft_s": result.ttft_s,
            "decode_tokens_per_s": result.decode_tokens_per_s,
            "native_compile_s": compile_s,
            "dtype": args.dtype,
            "device": str(device),
            "strategy": args.strategy,
            "kv_cache": {"block_size": pool.block_size, "num_blocks": pool.num_blocks},
            "torch_threads": torch.get_num_threads(),
            "tp": tp_size(args),
        }
        print(json.dumps(record))
        return 0
    rate = f"{result.decode_tokens_per_s:.1f} tokens/s" if result.decode_tokens_per_s else "n/a"
    ttft = f"{result.ttft_s * 1000:.1f} ms" if result.ttft_s is not None else "n/a"
    warmup = f"; warm-up: native kernels compiled in {compile_s:.1f} s, cached" if compile_s else ""
    print(
        f"[{len(ids)} prompt tokens, {len(result.generated_ids)} generated ({result.finish_reason}), "
        f"time to first token {ttft}, decode {rate}{warmup}]",
        file=sys.stderr,
    )
    return 0


def write_now(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def generation_of(ids: list[int], output: RequestOutput) -> Generation:
    times = output.timings.token_times
    rate = (
        (len(times) - 1) / (times[-1] - times[0])
        if len(times) > 1 and times[-1] > times[0]
        else None
    )
    return Generation(
        prompt_ids=list(ids),
        generated_ids=list(output.token_ids),
        text=output.text,
        finish_reason=output.finish_reason,
        ttft_s=output.timings.time_to_first_token,
        decode_tokens_per_s=rate,
    )


def run_prompts_file(
    args: argparse.Namespace,
    loaded: LoadedModel,
    sampling: SamplingParams,
    device: torch.device,
    hw: DeviceConfig,
    show: bool,
) -> int:
    """--prompts-file: every prompt through one continuous batch, results in file order."""
    prompts = read_prompts_file(args.prompts_file, loaded, args.max_new_tokens)
    seq_len = min(max(len(p.prompt_ids) + p.max_new_tokens for p in prompts), loaded.max_context)
    num_seqs = min(len(prompts), args.max_num_seqs)
    pool = plan_kv_pool(
        loaded.spec,
        hw,
        DTYPES[args.dtype],
        seq_len=seq_len,
        num_seqs=num_seqs,
        job=f"--prompts-file ({len(prompts)} prompts) with --max-num-seqs {args.max_num_seqs}",
    )
    with Bar(show, None, "native kernels (compiled on first use)", unit="kernel"):
        build_native_kernels(device)

    def on_result(prompt: PromptLine, output: RequestOutput) -> None:
        if args.json:
            record = {
                "index": prompt.index,
                "id": prompt.id,
                "prompt_ids": prompt.prompt_ids,
                "generated_ids": list(output.token_ids),
                "text": output.text,
                "finish_reason": output.finish_reason,
                "ttft_s": output.timings.time_to_first_token,
                "num_preemptions": output.num_preemptions,
            }
            print(json.dumps(record), flush=True)
        else:
            text = output.text if output.text is not None else ",".join(map(str, output.token_ids))
            label = prompt.id if prompt.id is not None else prompt.index
            print(f"[{label}] {text}", flush=True)

    generate_many(
        loaded,
        prompts,
        sampling,
        device=device,
        pool=pool,
        max_num_seqs=num_seqs,
        on_result=on_result,
    )
    return 0


def write_logits(path: Path, logits: object) -> None:
    """Write atomically: a temporary file in the same folder, then a rename."""
    from safetensors.torch import save_file

    fd, tmp = tempfile.mkstemp(dir=path.parent.resolve(), prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({"logits": logits.contiguous()}, tmp)  # type: ignore[attr-defined]
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

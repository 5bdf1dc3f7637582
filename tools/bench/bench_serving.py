"""Serving load benchmark of the generation runtime (tttv2.serve.runtime).

Requests (random prompts and output lengths) arrive as a Poisson process at each of
several rates; the engine serves them with continuous batching while this script records
throughput and latency percentiles: time to first token (TTFT, from the request's
scheduled arrival), inter-token latency (ITL) and end-to-end latency. Baselines measured
in the same run: the same workload served one request at a time (``max_num_seqs=1``,
all arriving at once) and, with ``--speculative-k``, target-only greedy decoding next to
speculative decoding with a one-layer draft (acceptance rate, speed-up, and whether the
outputs are identical).

Models: ``--model reference`` (the plain-torch reference CausalLM of the runtime tests)
or ``--model stack`` (a random ``tttv2.blocks.TransformerStack``). Numbers are for
comparing runs on one machine; nothing here asserts a time.

    uv run python tools/bench/bench_serving.py --quick
    uv run python tools/bench/bench_serving.py --model stack --rates 2,8,inf --speculative-k 4

With ``--http CHECKPOINT`` it drives HTTP servers instead (tools/bench/http_load.py):
``tttv2 serve`` on the checkpoint and, in the same run, ``transformers serve
--continuous-batching`` on the same folder as the baseline, each with streamed
/v1/completions requests at every ``--rates`` value (client-side throughput, TTFT and
inter-token latency percentiles, measured interleaved), and the ratios of the serving target.
The checkpoint needs a tokenizer and the baseline needs ``accelerate``:

    CKPT=$(uv run python tools/bench/make_checkpoint.py smollm2-135m --tokenizer)
    uv run --group bench python tools/bench/bench_serving.py --http "$CKPT" --dtype bfloat16 \
        --num-requests 32 --rates 1,4,inf
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
from pathlib import Path

import torch

from tttv2.serve.runtime import (
    LLMEngine,
    Request,
    SamplingParams,
    SpeculativeDecoder,
    StopConditions,
)

REPO = Path(__file__).resolve().parents[2]
HELPERS = REPO / "packages" / "tttv2-serve" / "tests" / "runtime"


def load_helper(name: str):
    spec = importlib.util.spec_from_file_location(name, HELPERS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# -- models ---------------------------------------------------------------------------------
def build_models(args):
    """(serving model, speculative target, draft) sharing weights."""
    if args.model == "reference":
        ref = load_helper("reference_causal_lm")
        scales = (1.0,) + (args.draft_gap,) * (args.layers - 1)
        kwargs = dict(
            vocab_size=args.vocab,
            hidden=args.hidden,
            num_heads=args.heads,
            num_layers=args.layers,
            max_seq_len=args.max_seq_len,
            seed=args.seed,
            layer_scales=scales,
        )
        target = ref.ReferenceCausalLM(**kwargs).to(args.device)
        return target, target, target.truncated(1).to(args.device)
    stack_model = load_helper("stack_model")
    spec = stack_model.tiny_model_spec(args.layers, args.hidden, args.vocab, args.max_seq_len)
    serving = stack_model.tiny_stack(
        spec, args.strategy, args.seed, args.device, later_layer_scale=args.draft_gap
    )
    target = stack_model.tiny_stack(
        spec, "multi_mode", args.seed, args.device, later_layer_scale=args.draft_gap
    )
    return serving, target, stack_model.truncated_stack(target, 1)


def describe(args) -> str:
    return (
        f"{args.model} model: {args.layers} layers, hidden {args.hidden}, {args.heads} heads, vocab {args.vocab}, "
        f"max_seq_len {args.max_seq_len}, {args.device}, {torch.get_num_threads()} torch threads"
    )


# -- workload -------------------------------------------------------------------------------
def workload(args) -> list[Request]:
    g = torch.Generator().manual_seed(args.seed)
    lo, hi = args.prompt_len
    out_lo, out_hi = args.max_new_tokens
    requests = []
    for i in range(args.num_requests):
        n = int(torch.randint(lo, hi + 1, (), generator=g))
        prompt = torch.randint(0, args.vocab, (n,), generator=g).tolist()
        new = int(torch.randint(out_lo, out_hi + 1, (), generator=g))
        sampling = (
            SamplingParams() if args.greedy else SamplingParams(temperature=0.8, top_p=0.95, seed=i)
        )
        requests.append(Request(prompt, sampling, StopConditions(max_new_tokens=new), request_id=i))
    return requests


def arrivals(n: int, rate: float, seed: int) -> list[float]:
    """Poisson arrival times (seconds from the start); all at 0 for rate inf."""
    if math.isinf(rate):
        return [0.0] * n
    g = torch.Generator().manual_seed(seed + 1)
    gaps = torch.empty(n).exponential_(rate, generator=g)
    return torch.cumsum(gaps, 0).tolist()


# -- measuring -------------------------------------------------------------------------------
def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def serve(engine, requests: list[Request], rate: float, seed: int) -> dict:
    """Feed ``requests`` at their arrival times while stepping the engine; latency stats."""
    times = arrivals(len(requests), rate, seed)
    start = time.perf_counter()
    i = 0
    while i < len(requests) or engine.has_unfinished():
        now = time.perf_counter() - start
        while i < len(requests) and times[i] <= now:
            engine.add_request(requests[i])
            i += 1
        if engine.has_unfinished():
            engine.step()
        elif i < len(requests):
            time.sleep(max(0.0, times[i] - (time.perf_counter() - start)))
    outputs = engine.run_until_done()
    end = max(o.timings.finished for o in outputs)
    ttft, itl, e2e = [], [], []
    for o in outputs:
        arrived = start + times[o.request_id]
        ttft.append(o.timings.token_times[0] - arrived)
        itl += o.timings.inter_token_latencies
        e2e.append(o.timings.finished - arrived)
    tokens = sum(len(o.token_ids) for o in outputs)
    ms = 1000.0
    return {
        "rate": rate,
        "requests": len(outputs),
        "output_tokens": tokens,
        "seconds": end - start,
        "output_tok_s": tokens / (end - start),
        "req_s": len(outputs) / (end - start),
        **{f"ttft_p{q}_ms": percentile(ttft, q) * ms for q in (50, 90, 99)},
        **{f"itl_p{q}_ms": percentile(itl, q) * ms for q in (50, 90, 99)},
        **{f"e2e_p{q}_ms": percentile(e2e, q) * ms for q in (50, 99)},
        "preemptions": engine.stats.preemptions,
        "prefill_tok_s": engine.stats.prefill_tokens_per_s,
        "decode_tok_s": engine.stats.decode_tokens_per_s,
        "outputs": {o.request_id: o.token_ids for o in outputs},
    }


def print_table(rows: list[dict]) -> None:
    cols = [
        ("rate", "rate/s", "{:>7}"),
        ("output_tok_s", "tok/s", "{:>8.1f}"),
        ("req_s", "req/s", "{:>6.2f}"),
        ("ttft_p50_ms", "TTFT p50", "{:>9.1f}"),
        ("ttft_p90_ms", "p90", "{:>8.1f}"),
        ("ttft_p99_ms", "p99", "{:>8.1f}"),
        ("itl_p50_ms", "ITL p50", "{:>8.2f}"),
        ("itl_p90_ms", "p90", "{:>7.2f}"),
        ("itl_p99_ms", "p99", "{:>7.2f}"),
        ("e2e_p50_ms", "e2e p50", "{:>8.0f}"),
        ("preemptions", "preempt", "{:>7}"),
    ]
    print("  ".join(f"{h:>{len(f.format(0)) if 'rate' not in k else 7}}" for k, h, f in cols))
    for r in rows:
        cells = []
        for key, _, fmt in cols:
            value = r[key]
            cells.append(
                f"{'inf' if math.isinf(value) else value:>7}"
                if key == "rate"
                else fmt.format(value)
            )
        print("  ".join(cells))


# -- main ------------------------------------------------------------------------------------
def parse_range(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition(":")
    return int(lo), int(hi or lo)


QUICK = dict(
    layers=2, hidden=64, vocab=128, max_seq_len=256,
    num_requests=16, prompt_len=(8, 48), max_new_tokens=(8, 24), rates="8,inf",
)  # fmt: skip


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model",
        choices=["reference", "stack"],
        default="reference",
        help="reference: plain-torch test model; stack: random tttv2.blocks.TransformerStack",
    )
    p.add_argument(
        "--strategy",
        default="continuous_batching",
        help="execution strategy of the stack (serving)",
    )
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=4, help="attention heads (reference model)")
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--max-seq-len", type=int, default=512)
    p.add_argument(
        "--draft-gap",
        type=float,
        default=0.3,
        help="scale of the output projections of layers after the first (small: the 1-layer draft agrees more)",
    )
    p.add_argument("--num-requests", type=int, default=48)
    p.add_argument("--prompt-len", type=parse_range, default=(16, 128), metavar="LO:HI")
    p.add_argument("--max-new-tokens", type=parse_range, default=(16, 64), metavar="LO:HI")
    p.add_argument(
        "--rates",
        default="4,16,inf",
        help="comma-separated request rates per second (inf: all at once)",
    )
    p.add_argument(
        "--num-blocks",
        type=int,
        default=None,
        help="KV blocks (default: enough for every request at once)",
    )
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--max-batched-tokens", type=int, default=256)
    p.add_argument("--max-num-seqs", type=int, default=64)
    p.add_argument(
        "--long-prefill-token-threshold",
        type=int,
        default=None,
        help="tokens one prompt may take of a step before the other requests had their share "
        "(default: the engine's, a quarter of --max-batched-tokens)",
    )
    p.add_argument(
        "--greedy",
        action="store_true",
        help="greedy decoding (default: temperature 0.8, top-p 0.95)",
    )
    p.add_argument(
        "--speculative-k",
        type=int,
        default=4,
        help="draft tokens per round; 0 skips the speculative part",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--quick",
        action="store_true",
        help="a small configuration that runs in seconds (options given explicitly override it)",
    )
    p.add_argument("--speculative-only", action="store_true", help="skip the load test")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument(
        "--http",
        metavar="CHECKPOINT",
        default=None,
        help="drive HTTP servers instead: `tttv2 serve` on this Hugging Face checkpoint folder and, as the "
        "baseline, `transformers serve --continuous-batching` on the same folder (see tools/bench/http_load.py); "
        "--prompt-len is then in words",
    )
    p.add_argument("--dtype", default="float32", help="--http: the servers' dtype")
    p.add_argument("--no-baseline", action="store_true", help="--http: skip transformers serve")
    p.add_argument(
        "--startup-timeout",
        type=float,
        default=300.0,
        help="--http: seconds a server may take to start",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=600.0,
        help="--http: seconds one rate's requests may take in all; unfinished ones count as errors",
    )
    args = p.parse_args(argv)
    if args.quick:
        p.set_defaults(**QUICK)
        args = p.parse_args(argv)
    args.rate_list = [float(r) for r in args.rates.split(",")]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.http:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import http_load

        try:
            results = http_load.run(args)
        except http_load.BenchError as exc:
            print(f"bench_serving: {exc}", file=sys.stderr)
            return 2
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    serving_model, target, draft = build_models(args)
    requests = workload(args)
    per_request = -(-(args.prompt_len[1] + args.max_new_tokens[1]) // args.block_size)
    num_blocks = args.num_blocks or per_request * args.num_requests

    def engine(max_num_seqs=args.max_num_seqs, model=serving_model):
        return LLMEngine(
            model,
            num_blocks,
            block_size=args.block_size,
            max_seq_len=args.max_seq_len,
            max_num_batched_tokens=args.max_batched_tokens,
            max_num_seqs=max_num_seqs,
            long_prefill_token_threshold=args.long_prefill_token_threshold,
        )

    print(describe(args))
    print(
        f"{len(requests)} requests, prompts {args.prompt_len[0]}-{args.prompt_len[1]} tokens, "
        f"{args.max_new_tokens[0]}-{args.max_new_tokens[1]} new tokens, {'greedy' if args.greedy else 'sampled'}; "
        f"{num_blocks} KV blocks of {args.block_size}, token budget {args.max_batched_tokens}/step"
    )
    engine().generate([requests[0].prompt_ids], stop=StopConditions(max_new_tokens=4))  # warm-up
    results: dict = {"config": {k: v for k, v in vars(args).items() if k != "json"}}
    if not args.speculative_only:
        results.update(load_test(args, engine, requests))
    if args.speculative_k > 0:
        results["speculative"] = speculative(args, target, draft, requests, num_blocks)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


def load_test(args, engine, requests) -> dict:
    rows = [serve(engine(), requests, rate, args.seed) for rate in args.rate_list]
    baseline = serve(engine(max_num_seqs=1), requests, math.inf, args.seed)
    print("\ncontinuous batching, Poisson arrivals:")
    print_table(rows)
    print("\nbaseline, one request at a time (all arrive at once):")
    print_table([baseline])
    burst = next((r for r in rows if math.isinf(r["rate"])), rows[-1])
    gain = burst["output_tok_s"] / baseline["output_tok_s"]
    print(f"throughput gain of continuous batching over one-at-a-time: {gain:.2f}x")
    same = all(burst["outputs"][k] == baseline["outputs"][k] for k in baseline["outputs"])
    print(f"outputs identical with and without batching: {'yes' if same else 'NO'}")
    for r in [*rows, baseline]:
        r.pop("outputs")
    return {"load": rows, "baseline": baseline, "batching_gain": gain, "identical": same}


def speculative(args, target, draft, requests, num_blocks) -> dict:
    greedy = [Request(r.prompt_ids, SamplingParams(), r.stop, r.request_id) for r in requests]
    plain = LLMEngine(
        target,
        num_blocks,
        block_size=args.block_size,
        max_seq_len=args.max_seq_len,
        max_num_batched_tokens=args.max_batched_tokens,
        max_num_seqs=args.max_num_seqs,
    )
    t0 = time.perf_counter()
    want = plain.generate(greedy)
    t_plain = time.perf_counter() - t0
    spec = SpeculativeDecoder(
        target,
        draft,
        args.speculative_k,
        num_blocks=num_blocks,
        block_size=args.block_size,
        max_seq_len=args.max_seq_len,
        max_num_seqs=args.max_num_seqs,
    )
    t0 = time.perf_counter()
    got = spec.generate(greedy)
    t_spec = time.perf_counter() - t0
    tokens = sum(len(o.token_ids) for o in want)
    s = spec.spec_stats
    same = [w.token_ids for w in want] == [g.token_ids for g in got]
    print(
        f"\nspeculative decoding, greedy, k={args.speculative_k}, draft = first layer of the target "
        f"(all {len(greedy)} requests at once):"
    )
    print(f"  target only : {tokens / t_plain:8.1f} tok/s  ({t_plain:.2f} s)")
    print(
        f"  speculative : {tokens / t_spec:8.1f} tok/s  ({t_spec:.2f} s)  speed-up {t_plain / t_spec:.2f}x"
    )
    print(
        f"  acceptance rate {s.acceptance_rate:.2f}, {s.tokens_per_round:.2f} tokens per target pass, "
        f"{s.target_passes} target / {s.draft_passes} draft passes; outputs identical: {'yes' if same else 'NO'}"
    )
    return {
        "k": args.speculative_k,
        "target_tok_s": tokens / t_plain,
        "speculative_tok_s": tokens / t_spec,
        "speed_up": t_plain / t_spec,
        "acceptance_rate": s.acceptance_rate,
        "tokens_per_round": s.tokens_per_round,
        "identical": same,
    }


if __name__ == "__main__":
    raise SystemExit(main())

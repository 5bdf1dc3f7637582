"""``tttv2 serve``: an OpenAI-compatible HTTP server (tttv2.serve.server) over a checkpoint."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from pathlib import Path

import torch

from tttv2.cli import options
from tttv2.cli.default_checkpoint import DEFAULT_CHECKPOINT_NOTE, default_checkpoint
from tttv2.cli.errors import UsageError
from tttv2.cli.hardware import apply_num_threads, device_config
from tttv2.cli.kv_pool import plan_kv_pool
from tttv2.cli.loading import DTYPES, build_native_kernels, load, resolve_device
from tttv2.cli.progress import progress_enabled
from tttv2.cli.tensor_parallel import add_tp_options, run_tensor_parallel, tp_size
from tttv2.core.model_plugins import LoadedModel
from tttv2.serve.runtime import LLMEngine
from tttv2.serve.server import (
    ChatTemplate,
    ChatTemplateError,
    ServedModel,
    ServerConfig,
    create_app,
    run_server,
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a checkpoint over an OpenAI-compatible HTTP API",
        description="Load a Hugging Face checkpoint through its model plugin and serve it over HTTP "
        "with the OpenAI API (POST /v1/completions, POST /v1/chat/completions with the checkpoint's "
        "chat template, GET /v1/models, GET /health, GET /metrics for Prometheus). All requests share "
        "one continuously batched engine over a paged KV cache sized by tttv2-hw's memory plan. "
        "SIGTERM or Ctrl-C stops admitting requests, lets running ones finish for --shutdown-timeout "
        "seconds, aborts the rest and exits with status 0. Prints the address it listens on to stderr.",
    )
    options.add_checkpoint(p, required=False, default_note=DEFAULT_CHECKPOINT_NOTE)
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    p.add_argument(
        "--port",
        type=options.int_at_least(0),
        default=8000,
        metavar="N",
        help="TCP port; 0 lets the OS choose one (printed at start) (default: %(default)s)",
    )
    p.add_argument(
        "--api-key",
        default=os.environ.get("TTTV2_API_KEY"),
        metavar="KEY",
        help="require 'Authorization: Bearer KEY' on every route but /health (default: $TTTV2_API_KEY, "
        "else no key)",
    )
    p.add_argument(
        "--served-model-name",
        metavar="NAME",
        help="the model id clients send and /v1/models lists (default: the checkpoint folder's name)",
    )
    p.add_argument(
        "--max-num-seqs",
        type=options.int_at_least(1),
        default=16,
        metavar="N",
        help="requests generating at once in the continuous batch (default: %(default)s)",
    )
    p.add_argument(
        "--max-queue",
        type=options.int_at_least(0),
        default=64,
        metavar="N",
        help="requests that may wait beyond --max-num-seqs; more are answered 429 with Retry-After "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--max-num-batched-tokens",
        type=options.int_at_least(1),
        default=512,
        metavar="N",
        help="tokens one engine step processes at most (prompts are prefilled in chunks) "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--max-model-len",
        type=options.int_at_least(1),
        default=None,
        metavar="N",
        help="longest sequence (prompt + output tokens) a request may reach; the KV pool is sized "
        "for --max-num-seqs such sequences, so a smaller value takes less memory (default: the "
        "model's context)",
    )
    p.add_argument(
        "--shutdown-timeout",
        type=options.float_in(0.0, 3600.0, hint="seconds in [0, 3600]"),
        default=30.0,
        metavar="S",
        help="on SIGTERM, how long running requests may take to finish before they are aborted "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        default="warning",
        help="uvicorn's log level (default: %(default)s)",
    )
    options.add_model_options(p)
    add_tp_options(
        p,
        timeout_default=7 * 24 * 3600.0,
        timeout_note=": the followers wait in one for the next request, so an idle server needs a "
        "long one (a rank that dies is noticed at once: the server stops with one line, exit 1)",
    )


#: Connections the kernel queues before the server accepts them (uvicorn's default backlog).
LISTEN_BACKLOG = 2048


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: the OS picks one); a clear error when the port is taken.

    It listens from here on, so a client that connects as soon as the address is printed
    waits in the kernel's queue until the server accepts, instead of being refused while
    the app still starts (uvicorn listens on the socket it is given only when it starts)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"--host {host} --port {port}: cannot listen there: {exc.strerror or exc}"
        ) from None
    return sock


def run(args: argparse.Namespace) -> int:
    sock = bind(args.host, args.port)  # before loading: a taken port fails fast
    device = resolve_device(args.device)
    hw = device_config(device)
    apply_num_threads(hw)
    show = progress_enabled(False)
    checkpoint = (
        args.checkpoint if args.checkpoint is not None else default_checkpoint(show_progress=show)
    )
    if tp_size(args) > 1:
        return serve_tensor_parallel(args, sock, checkpoint, device)
    loaded = load(
        checkpoint, args.dtype, device, args.strategy, show_progress=show, capture_decode=True
    )
    return serve_loaded(args, loaded, checkpoint, device, sock)


def serve_tensor_parallel(
    args: argparse.Namespace, sock: socket.socket, checkpoint: Path, device: torch.device
) -> int:
    """Rank 0 (a worker process) serves; the port checked here is handed to it. SIGTERM to
    this process ends the group like Ctrl-C (every rank is terminated, then killed)."""
    args.port = sock.getsockname()[1]  # port 0: the one the OS picked
    sock.close()

    def interrupt(signum: int, frame: object) -> None:  # noqa: ARG001
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        return run_tensor_parallel(
            args, checkpoint, device, serve_rank0, run_timeout_s=10 * 365 * 24 * 3600.0
        )
    except KeyboardInterrupt:  # the workers were ended; rank 0's server said "stopped"
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve_rank0(
    args: argparse.Namespace, loaded: LoadedModel, checkpoint: Path, device: torch.device
) -> int:
    """With --tp: rank 0 binds the port the launching process checked, then serves."""
    return serve_loaded(args, loaded, checkpoint, device, bind(args.host, args.port))


def serve_loaded(
    args: argparse.Namespace,
    loaded: LoadedModel,
    checkpoint: Path,
    device: torch.device,
    sock: socket.socket,
) -> int:
    hw = device_config(device)
    tokenizer = loaded.tokenizer
    if tokenizer is None:
        raise UsageError(
            f"--checkpoint {checkpoint}: serving text needs the checkpoint's tokenizer.json"
        )
    try:
        template = ChatTemplate.from_tokenizer_config(checkpoint)
    except ChatTemplateError as exc:
        raise UsageError(f"--checkpoint {checkpoint}: tokenizer_config.json: {exc}") from None
    context = loaded.max_context
    if args.max_model_len is not None:
        context = min(context, args.max_model_len)
    single = plan_kv_pool(
        loaded.spec, hw, DTYPES[args.dtype], seq_len=context, job=f"the model's context ({context})"
    )
    wanted = args.max_num_seqs * single.blocks_for(context)
    num_blocks = max(single.num_blocks, min(wanted, single.plan_blocks))
    build_native_kernels(device)
    engine = LLMEngine(
        loaded.model,
        num_blocks=num_blocks,
        block_size=single.block_size,
        max_seq_len=context,
        max_num_batched_tokens=args.max_num_batched_tokens,
        max_num_seqs=args.max_num_seqs,
        detokenize=lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
        device=device,
        vocab_size=loaded.spec.vocab_size,
    )
    name = args.served_model_name or Path(checkpoint).resolve().name
    served = ServedModel(name, engine, tokenizer, tuple(loaded.eos_token_ids), template)
    config = ServerConfig(
        api_key=args.api_key, max_queue=args.max_queue, shutdown_timeout_s=args.shutdown_timeout
    )
    app = create_app(served, config)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(
        f"tttv2 serve: {name} on http://{shown}:{port}/v1 ({args.dtype}, {device}, {num_blocks} KV blocks of "
        f"{single.block_size} tokens, {torch.get_num_threads()} torch threads"
        f"{f', tensor parallel over {tp_size(args)} ranks' if tp_size(args) > 1 else ''}"
        f"{', chat template' if template else ', no chat template'}{', API key required' if args.api_key else ''})",
        file=sys.stderr,
        flush=True,
    )
    run_server(
        app,
        str(host),
        int(port),
        shutdown_timeout_s=args.shutdown_timeout,
        log_level=args.log_level,
        sock=sock,
    )
    print("tttv2 serve: stopped", file=sys.stderr, flush=True)
    return 0

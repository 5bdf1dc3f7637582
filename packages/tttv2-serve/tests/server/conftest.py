"""A tiny random model (the runtime tests' plain-torch reference CausalLM, fp32) with a
small byte-level BPE tokenizer, served over HTTP on 127.0.0.1 at a port the OS picks.
Servers run in a background thread and are stopped (bounded) after the test module."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import torch

_RUNTIME_TESTS = str(Path(__file__).resolve().parent.parent / "runtime")
if _RUNTIME_TESTS not in sys.path:
    sys.path.insert(0, _RUNTIME_TESTS)

from reference_causal_lm import ReferenceCausalLM  # noqa: E402

from tttv2.serve.runtime import LLMEngine  # noqa: E402
from tttv2.serve.server import ChatTemplate, ServedModel, ServerConfig, create_app, make_server  # noqa: E402

MODEL_NAME = "tiny-reference"
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
STARTUP_TIMEOUT_S = 30.0

# The engine thread runs many tiny ops; on a loaded 2-core machine intra-op threading only
# adds synchronisation cost (20x slower here). Process-wide, as the server thread outlives
# any one test.
torch.set_num_threads(1)


class SlowReference(ReferenceCausalLM):
    """The reference model, with an optional pause per forward pass so a test can act
    while a request is still generating."""

    delay_s = 0.0

    def forward(self, input_ids, meta, cache):
        if self.delay_s:
            time.sleep(self.delay_s)
        return super().forward(input_ids, meta, cache)


@pytest.fixture(scope="session")
def tokenizer():
    from tttv2.testing.hf.tokenizer import train_tokenizer

    return train_tokenizer(320)


@pytest.fixture(scope="session")
def eos_id(tokenizer) -> int:
    return tokenizer.token_to_id("</s>")


def make_engine(
    model, tokenizer, *, num_blocks: int = 24, block_size: int = 8, max_num_seqs: int = 16
) -> LLMEngine:
    return LLMEngine(
        model,
        num_blocks=num_blocks,
        block_size=block_size,
        max_num_batched_tokens=64,
        max_num_seqs=max_num_seqs,
        detokenize=lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
        dtype=torch.float32,
    )


def make_model(tokenizer) -> SlowReference:
    torch.manual_seed(0)
    return SlowReference(
        vocab_size=tokenizer.get_vocab_size(), hidden=32, num_heads=2, num_layers=2, max_seq_len=256
    )


@dataclass
class RunningServer:
    base_url: str
    app: object
    model: SlowReference
    served: ServedModel
    api_key: str | None = None

    def metrics(self) -> dict[str, float]:
        """The /metrics samples, keyed by name plus labels as Prometheus prints them."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        text = httpx.get(f"{self.base_url}/metrics", headers=headers, timeout=10).text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                out[key] = float(value)
        return out


def start_server(served: ServedModel, config: ServerConfig) -> tuple[object, threading.Thread, str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(served, config)
    server = make_server(app, "127.0.0.1", port, shutdown_timeout_s=config.shutdown_timeout_s)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def serving(
    tokenizer, *, api_key=None, max_queue=64, max_num_seqs=16, num_blocks=24, chat=True
) -> Iterator[RunningServer]:
    model = make_model(tokenizer)
    template = (
        ChatTemplate(CHAT_TEMPLATE, {"bos_token": "<s>", "eos_token": "</s>"}) if chat else None
    )
    served = ServedModel(
        MODEL_NAME,
        make_engine(model, tokenizer, num_blocks=num_blocks, max_num_seqs=max_num_seqs),
        tokenizer,
        eos_token_ids=(tokenizer.token_to_id("</s>"),),
        chat_template=template,
    )
    config = ServerConfig(api_key=api_key, max_queue=max_queue, shutdown_timeout_s=2.0)
    server, thread, url = start_server(served, config)
    try:
        yield RunningServer(url, server, model, served, api_key)
    finally:
        model.delay_s = 0.0
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="module")
def server(tokenizer) -> Iterator[RunningServer]:
    with serving(tokenizer) as running:
        yield running


@pytest.fixture
def client(server):
    import openai

    return openai.OpenAI(
        base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=60
    )

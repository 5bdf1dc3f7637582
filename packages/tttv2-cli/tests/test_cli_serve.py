"""``tttv2 serve`` in a subprocess on a tiny Llama checkpoint: it prints where it listens
(port chosen by the OS), answers the OpenAI client, and on SIGTERM lets a running stream
finish and exits with status 0."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading

import httpx
import pytest

STARTUP_S = 300


def _start(checkpoint, *extra: str) -> tuple[subprocess.Popen, str]:
    cmd = [
        sys.executable,
        "-m",
        "tttv2.cli.main",
        "serve",
        "--checkpoint",
        str(checkpoint),
        "--port",
        "0",
    ]
    proc = subprocess.Popen(
        [*cmd, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if "/v1 (" in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(STARTUP_S):
        proc.kill()
        pytest.fail("tttv2 serve did not start: " + "".join(lines))
    url = re.search(r"http://\S+/v1", "".join(lines)).group(0)
    return proc, url


def test_serve_answers_the_openai_client_and_drains_on_sigterm(tiny_llama) -> None:
    import openai

    proc, url = _start(tiny_llama.path, "--served-model-name", "tiny", "--shutdown-timeout", "20")
    try:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=60)
        assert [m.id for m in client.models.list().data] == ["tiny"]
        out = client.completions.create(
            model="tiny",
            prompt=[1, 2, 3],
            max_tokens=3,
            temperature=0,
            extra_body={"ignore_eos": True},
        )
        assert out.usage.completion_tokens == 3 and out.choices[0].finish_reason == "length"
        body = {
            "model": "tiny",
            "prompt": [1, 2, 3],
            "max_tokens": 48,
            "stream": True,
            "ignore_eos": True,
        }
        with httpx.stream("POST", f"{url}/completions", json=body, timeout=60) as response:
            lines = response.iter_lines()
            first = next(line for line in lines if line)
            assert first.startswith("data: {")
            proc.send_signal(signal.SIGTERM)
            rest = [line for line in lines if line]
        chunks = [json.loads(line[6:]) for line in [first, *rest] if line.startswith("data: {")]
        assert rest[-1] == "data: [DONE]"
        assert (
            len(chunks) == 48 and chunks[-1]["choices"][0]["finish_reason"] == "length"
        )  # drained, not cut
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_the_socket_accepts_connections_before_the_server_starts() -> None:
    """The address is printed before uvicorn starts; a client connecting then must be queued,
    not refused (a bound socket that does not listen yet answers with a reset)."""
    import socket

    from tttv2.cli.commands.serve import bind

    sock = bind("127.0.0.1", 0)
    try:
        with socket.create_connection(sock.getsockname()[:2], timeout=5):
            pass
    finally:
        sock.close()


def test_serve_refuses_a_port_in_use(tiny_llama) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "tttv2.cli.main",
                "serve",
                "--checkpoint",
                str(tiny_llama.path),
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 2 and "cannot listen there" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_max_model_len_caps_the_context_the_server_accepts(tiny_llama) -> None:
    proc, url = _start(tiny_llama.path, "--served-model-name", "tiny", "--max-model-len", "24")
    try:
        models = httpx.get(f"{url}/models", timeout=60).json()["data"]
        assert models[0]["max_model_len"] == 24 < int(tiny_llama.config["max_position_embeddings"])
        too_long = {"model": "tiny", "prompt": list(range(2, 32)), "max_tokens": 1}
        answer = httpx.post(f"{url}/completions", json=too_long, timeout=60)
        assert (
            answer.status_code == 400
            and answer.json()["error"]["code"] == "context_length_exceeded"
        )
        fits = {"model": "tiny", "prompt": [1, 2, 3], "max_tokens": 2, "ignore_eos": True}
        assert httpx.post(f"{url}/completions", json=fits, timeout=60).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=60)

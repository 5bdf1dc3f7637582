"""Running the app on uvicorn, with a clean SIGTERM/SIGINT: stop admitting (new requests
get 503, /health says so), let running requests finish for up to ``shutdown_timeout_s``,
abort the rest (their KV blocks are freed), stop the engine thread and return."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI


class DrainingServer(uvicorn.Server):
    """A uvicorn server that tells the engine loop to stop admitting as soon as a signal
    asks it to exit (uvicorn then stops listening and waits for open requests)."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._engine_loop = app.state.engine_loop

    def handle_exit(self, sig: int, frame: Any) -> None:
        self._engine_loop.stop_admitting()
        super().handle_exit(sig, frame)


def make_server(
    app: FastAPI,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    shutdown_timeout_s: float = 30.0,
    log_level: str = "warning",
) -> DrainingServer:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(round(shutdown_timeout_s))),
    )
    return DrainingServer(config, app)


def run_server(
    app: FastAPI,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    shutdown_timeout_s: float = 30.0,
    log_level: str = "warning",
    sock: socket.socket | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (blocking); after SIGTERM it drains and returns normally.
    ``sock``: an already bound socket (port 0 lets the OS choose)."""
    server = make_server(
        app, host, port, shutdown_timeout_s=shutdown_timeout_s, log_level=log_level
    )
    with _sigterm_returns():
        server.run(sockets=[sock] if sock is not None else None)


@contextlib.contextmanager
def _sigterm_returns() -> Iterator[None]:
    """uvicorn handles SIGTERM (drains) and then raises it again with the handler that was
    installed before it started; with the default one the process would die of the signal
    after a clean drain. A do-nothing handler makes ``run_server`` return instead."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

"""The OpenAI-compatible HTTP API (FastAPI on uvicorn) over one :class:`ServedModel`.

Routes: ``POST /v1/completions``, ``POST /v1/chat/completions``, ``GET /v1/models``,
``GET /health``, ``GET /metrics``. Every request shares the engine's continuous batch
through :class:`EngineLoop`. Errors are OpenAI-shaped (``{"error": {...}}``): a malformed or
out-of-range request is a 400, a missing or wrong API key a 401, a full queue a 429 with
``Retry-After``, a server that is shutting down a 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tttv2.serve.runtime import (
    InvalidParameterError,
    InvalidRequestError,
    SamplingParams,
    StopConditions,
    TokenEvent,
)
from tttv2.serve.runtime import Request as EngineRequest
from tttv2.serve.server.chat_template import ChatTemplateError
from tttv2.serve.server.engine_loop import Aborted, EngineLoop, TokenStream
from tttv2.serve.server.errors import APIError, bad_request, error_body
from tttv2.serve.server.metrics import ServerMetrics
from tttv2.serve.server.openai_shapes import CompletionLogprobs, chat_logprobs, finish_reason, usage
from tttv2.serve.server.protocol import ChatCompletionRequest, CompletionRequest, SamplingFields
from tttv2.serve.server.served_model import ServedModel

#: The completions endpoint's default ``max_tokens`` (the OpenAI API's); chat has none
#: (up to the context limit).
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
#: How often a non-streaming handler checks that its client is still connected.
DISCONNECT_POLL_S = 0.25


@dataclass(frozen=True)
class ServerConfig:
    api_key: str | None = None
    max_queue: int = 64
    shutdown_timeout_s: float = 30.0
    retry_after_s: int = 1


class APIKeyMiddleware:
    """Every route but /health needs ``Authorization: Bearer <key>`` (401 otherwise)."""

    def __init__(self, app: Any, api_key: str) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] != "/health":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = error_body(
                    "missing or invalid API key: send the header 'Authorization: Bearer <key>'",
                    "authentication_error",
                    code="invalid_api_key",
                )
                await JSONResponse(body, status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(served: ServedModel, config: ServerConfig | None = None) -> FastAPI:
    config = config or ServerConfig()
    metrics = ServerMetrics()
    engine_loop = EngineLoop(
        served.engine, metrics, max_queue=config.max_queue, retry_after_s=config.retry_after_s
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine_loop.start()
        yield
        await asyncio.to_thread(engine_loop.shutdown, config.shutdown_timeout_s)

    app = FastAPI(
        title="tttv2 serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.engine_loop = engine_loop
    app.state.metrics = metrics
    app.state.served = served
    if config.api_key:
        app.add_middleware(APIKeyMiddleware, api_key=config.api_key)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_error(exc).body(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(exc.detail), kind), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _server_error(request: Request, exc: Exception) -> JSONResponse:
        # a fault of the server or the model, not of the request: still an OpenAI-shaped body
        message = f"internal error: {type(exc).__name__}: {exc}"
        return JSONResponse(error_body(message, "server_error"), status_code=500)

    @app.get("/health")
    async def health() -> JSONResponse:
        if not engine_loop.admitting:
            return JSONResponse({"status": "shutting_down"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models")
    async def models() -> JSONResponse:
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "id": served.name,
                        "object": "model",
                        "created": served.created,
                        "owned_by": "tttv2",
                        "max_model_len": served.engine.context_limit,
                    }
                ],
            }
        )

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request) -> Response:
        received = time.perf_counter()
        check_model(served, body)
        if body.echo:
            raise bad_request("echo=true is not supported", param="echo")
        prompt_ids = completion_prompt(served, body.prompt)
        max_tokens = (
            body.max_tokens if body.max_tokens is not None else COMPLETIONS_DEFAULT_MAX_TOKENS
        )
        job = Job(
            served, engine_loop, body, prompt_ids, max_tokens, body.logprobs, "cmpl", received
        ).start()
        if body.stream:
            return sse(job.stream_completion(request))
        return JSONResponse(await job.completion(request))

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        received = time.perf_counter()
        check_model(served, body)
        if served.chat_template is None:
            raise bad_request(
                f"model {served.name!r} has no chat template (tokenizer_config.json has no chat_template); "
                "use /v1/completions",
                param="messages",
                code="no_chat_template",
            )
        messages = [
            chat_message(m.model_dump(exclude_none=False), i) for i, m in enumerate(body.messages)
        ]
        try:
            text = served.chat_template.render(messages, body.add_generation_prompt)
        except ChatTemplateError as exc:
            raise bad_request(str(exc), param="messages") from None
        prompt_ids = served.encode(text, add_special_tokens=False)
        if not prompt_ids:
            raise bad_request(
                "the chat template rendered these messages to an empty prompt", param="messages"
            )
        max_tokens = body.max_completion_tokens or body.max_tokens
        top = body.top_logprobs or 0
        if body.top_logprobs is not None and not body.logprobs:
            raise bad_request("top_logprobs needs logprobs=true", param="top_logprobs")
        logprobs = top if body.logprobs else None
        job = Job(
            served, engine_loop, body, prompt_ids, max_tokens, logprobs, "chatcmpl", received
        ).start()
        if body.stream:
            return sse(job.stream_chat(request))
        return JSONResponse(await job.chat(request))

    return app


# -- request checks -------------------------------------------------------------------------
#: The parts of a pydantic error location that name a member of a union type, not a field.
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|list\[.*\]|dict\[.*\]|function-.*)$")


def validation_error(exc: RequestValidationError) -> APIError:
    errors = exc.errors()
    if not errors:
        return bad_request("invalid request body")
    first = errors[0]
    if first.get("type") == "json_invalid":
        return bad_request(
            f"the request body is not valid JSON: {first.get('ctx', {}).get('error', '')}".rstrip(
                ": "
            )
        )
    loc = [str(p) for p in first.get("loc", ()) if p != "body" and not _UNION_TAG.match(str(p))]
    param = ".".join(loc) or None
    where = f"{param}: " if param else "request body: "
    extra = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return bad_request(f"{where}{first.get('msg', 'invalid value')}{extra}", param=param)


def check_model(served: ServedModel, body: SamplingFields) -> None:
    if body.model != served.name:
        raise bad_request(
            f"model {body.model!r} does not exist; this server serves {served.name!r}",
            param="model",
            code="model_not_found",
        )


def completion_prompt(served: ServedModel, prompt: Any) -> list[int]:
    if isinstance(prompt, str):
        ids = served.encode(prompt, add_special_tokens=True) if prompt else []
    elif prompt and all(isinstance(p, int) for p in prompt):
        ids = list(prompt)
    elif isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        ids = served.encode(prompt[0], add_special_tokens=True) if prompt[0] else []
    elif isinstance(prompt, list) and len(prompt) > 1:
        raise bad_request(
            "one prompt per request: pass a string or a list of token ids", param="prompt"
        )
    else:
        ids = []
    if not ids:
        raise bad_request("prompt is empty", param="prompt")
    vocab = served.engine.vocab_size
    bad = [t for t in ids if t < 0 or (vocab is not None and t >= vocab)]
    if bad:
        raise bad_request(
            f"prompt token id {bad[0]} is outside the vocabulary (size {vocab})", param="prompt"
        )
    return ids


def chat_message(message: dict[str, Any], index: int) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list):
        texts = []
        for part in content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise bad_request(
                    f"messages[{index}].content: only text parts are supported, got type {part.get('type')!r}",
                    param=f"messages.{index}.content",
                )
            texts.append(part["text"])
        message["content"] = "".join(texts)
    return message


# -- one HTTP request's generation ------------------------------------------------------------
class Job:
    """The ``n`` engine requests of one HTTP request, and turning their tokens into a
    response or a stream."""

    def __init__(
        self,
        served: ServedModel,
        engine_loop: EngineLoop,
        body: SamplingFields,
        prompt_ids: list[int],
        max_tokens: int | None,
        logprobs: int | None,
        prefix: str,
        received: float,
    ) -> None:
        limit = served.engine.context_limit
        if len(prompt_ids) >= limit:
            raise bad_request(
                f"the prompt has {len(prompt_ids)} tokens but this model's context is {limit} tokens "
                f"(prompt + generated); send at most {limit - 1}",
                param="prompt" if prefix == "cmpl" else "messages",
                code="context_length_exceeded",
            )
        self.served = served
        self.engine_loop = engine_loop
        self.body = body
        self.prompt_ids = prompt_ids
        self.logprobs = logprobs
        self.received = received
        self.id = f"{prefix}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        try:
            stop = StopConditions(
                max_new_tokens=max_tokens,
                eos_token_ids=() if body.ignore_eos else served.eos_token_ids,
                stop_strings=body.stop_strings(),
            )
            self.requests = [
                EngineRequest(
                    tuple(prompt_ids), self._sampling(i), stop, request_id=f"{self.id}-{i}"
                )
                for i in range(body.n)
            ]
        except (InvalidParameterError, InvalidRequestError) as exc:
            raise bad_request(str(exc), param=getattr(exc, "field", None)) from None
        self.index = {r.request_id: i for i, r in enumerate(self.requests)}
        self.stream: TokenStream | None = None

    def start(self) -> Job:
        """Queue the requests now (a full queue is a 429 before any response starts)."""
        self.stream = self.engine_loop.submit(self.requests, self.received)
        return self

    def _sampling(self, i: int) -> SamplingParams:
        b = self.body
        return SamplingParams(
            temperature=b.temperature,
            top_k=max(0, b.top_k),
            top_p=b.top_p,
            min_p=b.min_p,
            repetition_penalty=b.repetition_penalty,
            presence_penalty=b.presence_penalty,
            frequency_penalty=b.frequency_penalty,
            seed=None if b.seed is None else (b.seed + i) % 2**63,
            logprobs=self.logprobs,
        )

    async def events(
        self, request: Request, *, poll_disconnect: bool
    ) -> AsyncIterator[list[TokenEvent]]:
        """Batches of events as the engine produces them, until every choice has finished.
        Aborts what is left when the consumer goes away (disconnect, cancellation)."""
        stream = self.stream
        if stream is None:
            raise RuntimeError("Job.start() was not called")
        pending: set[Hashable] = set(self.index)
        try:
            while pending:
                item = await self._next(stream, request, poll_disconnect)
                batch = [item]
                while (more := stream.get_nowait()) is not None:  # whatever else is already there
                    batch.append(more)
                events = []
                for it in batch:
                    if isinstance(it, BaseException):
                        raise it
                    if isinstance(it, Aborted):
                        raise APIError(
                            503,
                            f"request aborted ({it.reason})",
                            type="server_error",
                            code="aborted",
                        )
                    events.append(it)
                    if it.finished:
                        pending.discard(it.request_id)
                yield events
        finally:
            if pending:
                self.engine_loop.abort(sorted(pending, key=str))

    async def _next(self, stream: TokenStream, request: Request, poll_disconnect: bool) -> Any:
        if not poll_disconnect:
            return await stream.get()
        while True:
            try:
                return await asyncio.wait_for(stream.get(), DISCONNECT_POLL_S)
            except TimeoutError:
                if await request.is_disconnected():
                    raise asyncio.CancelledError("client disconnected") from None

    async def _collect(self, request: Request) -> list[list[TokenEvent]]:
        per_choice: list[list[TokenEvent]] = [[] for _ in self.requests]
        try:
            async for events in self.events(request, poll_disconnect=True):
                for e in events:
                    per_choice[self.index[e.request_id]].append(e)
        except (InvalidRequestError, InvalidParameterError) as exc:
            raise bad_request(str(exc)) from None
        return per_choice

    def _usage(self, per_choice: list[list[TokenEvent]]) -> dict[str, int]:
        return usage(len(self.prompt_ids) * len(self.requests), sum(len(c) for c in per_choice))

    async def completion(self, request: Request) -> dict[str, Any]:
        per_choice = await self._collect(request)
        choices = []
        for i, events in enumerate(per_choice):
            last = events[-1]
            lp = None
            if self.logprobs is not None:
                lp = CompletionLogprobs(self.served.token_text).add(events)
            choices.append(
                {
                    "index": i,
                    "text": last.output.text,  # type: ignore[union-attr]  # a finished request's last event has it
                    "logprobs": lp,
                    "finish_reason": finish_reason(last.finish_reason),
                }
            )
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.served.name,
            "choices": choices,
            "usage": self._usage(per_choice),
        }

    async def chat(self, request: Request) -> dict[str, Any]:
        per_choice = await self._collect(request)
        choices = []
        for i, events in enumerate(per_choice):
            last = events[-1]
            choices.append(
                {
                    "index": i,
                    "message": {"role": "assistant", "content": last.output.text},  # type: ignore[union-attr]  # as above
                    "logprobs": chat_logprobs(events, self.served.token_text)
                    if self.logprobs is not None
                    else None,
                    "finish_reason": finish_reason(last.finish_reason),
                }
            )
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.served.name,
            "choices": choices,
            "usage": self._usage(per_choice),
        }

    def _chunk(
        self, obj: str, choices: list[dict[str, Any]], extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        chunk = {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.served.name,
            "choices": choices,
        }
        chunk.update(extra or {})
        return chunk

    def _wants_usage(self) -> bool:
        return bool(self.body.stream_options and self.body.stream_options.include_usage)

    async def stream_completion(self, request: Request) -> AsyncIterator[dict[str, Any]]:
        counts = [0] * len(self.requests)
        logprobs = [CompletionLogprobs(self.served.token_text) for _ in self.requests]
        async for events in self.events(request, poll_disconnect=False):
            for e in events:
                i = self.index[e.request_id]
                counts[i] += 1
                choice = {
                    "index": i,
                    "text": e.text,
                    "logprobs": logprobs[i].add([e]) if self.logprobs is not None else None,
                    "finish_reason": finish_reason(e.finish_reason) if e.finished else None,
                }
                yield self._chunk("text_completion", [choice])
        if self._wants_usage():
            yield self._chunk(
                "text_completion",
                [],
                {"usage": usage(len(self.prompt_ids) * len(counts), sum(counts))},
            )

    async def stream_chat(self, request: Request) -> AsyncIterator[dict[str, Any]]:
        counts = [0] * len(self.requests)
        for i in range(len(self.requests)):
            yield self._chunk(
                "chat.completion.chunk",
                [
                    {
                        "index": i,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
            )
        async for events in self.events(request, poll_disconnect=False):
            for e in events:
                i = self.index[e.request_id]
                counts[i] += 1
                choice = {
                    "index": i,
                    "delta": {"content": e.text},
                    "logprobs": chat_logprobs([e], self.served.token_text)
                    if self.logprobs is not None
                    else None,
                    "finish_reason": finish_reason(e.finish_reason) if e.finished else None,
                }
                yield self._chunk("chat.completion.chunk", [choice])
        if self._wants_usage():
            yield self._chunk(
                "chat.completion.chunk",
                [],
                {"usage": usage(len(self.prompt_ids) * len(counts), sum(counts))},
            )


def sse(chunks: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    """Server-sent events: ``data: <json>`` per chunk, then ``data: [DONE]``. An error after
    the stream has started is sent as one ``data: {"error": ...}`` event before [DONE]."""

    async def body() -> AsyncIterator[str]:
        try:
            async for chunk in chunks:
                yield f"data: {json.dumps(chunk)}\n\n"
        except APIError as exc:
            yield f"data: {json.dumps(exc.body())}\n\n"
        except (InvalidRequestError, InvalidParameterError) as exc:
            yield f"data: {json.dumps(bad_request(str(exc)).body())}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(
        body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )

"""Errors the HTTP server answers with, in the OpenAI error shape:
``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """An error answered with HTTP ``status`` and an OpenAI-shaped body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(
    message: str, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


class QueueFullError(APIError):
    """The bounded queue of waiting requests is full (429 with Retry-After)."""

    def __init__(self, capacity: int, retry_after_s: int) -> None:
        super().__init__(
            429,
            f"the server is at capacity ({capacity} requests running or waiting); retry later",
            type="rate_limit_error",
            code="queue_full",
            headers={"Retry-After": str(retry_after_s)},
        )


class ShuttingDownError(APIError):
    def __init__(self) -> None:
        super().__init__(
            503,
            "the server is shutting down and admits no new requests",
            type="server_error",
            code="shutting_down",
        )

"""The ASGI application of ``mlgate serve``: a path table in front of :class:`Handlers`.

No web framework sits between uvicorn and the handlers. Under load a scoring request spent more
time in Starlette's stack (its middlewares, the router trying each route's pattern, the Request
and Response objects) than in mlgate's handler; here a request costs a dictionary lookup (or a
split of a V2 path), one pass over its headers, the body read within the size limit, and the two
ASGI messages of the answer, whose headers are built once per version.

Every path has one method (``POST`` for scoring, ``GET`` — and ``HEAD`` — for the rest); another
method is 405 and an unknown path 404, in the protocol's error shape. The lifespan starts the
follower and stops it at shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from mlgate.errors import ScoringInputError
from mlgate.serving.handlers import Handlers, Reply

_FIXED = {
    "/invocations": "invocations",
    "/ping": "ping",
    "/health": "health",
    "/version": "version",
    "/metrics": "metrics",
    "/v2": "v2_server",
    "/v2/health/live": "v2_live",
    "/v2/health/ready": "v2_ready",
}
_SCORING = frozenset({"invocations", "v2_infer"})
_GET: dict[str, Callable[[Handlers, dict[str, str]], Reply]] = {
    "ping": lambda h, _: h.ping(),
    "health": lambda h, _: h.health(),
    "version": lambda h, _: h.version(),
    "metrics": lambda h, _: h.metrics(),
    "v2_server": lambda h, _: h.v2_server(),
    "v2_live": lambda h, _: h.v2_live(),
    "v2_ready": lambda h, _: h.v2_ready(),
    "v2_model": lambda h, p: h.v2_model(p["name"], p.get("version")),
    "v2_model_ready": lambda h, p: h.v2_model_ready(p["name"], p.get("version")),
}
_V2_ENDINGS = {"infer": "v2_infer", "ready": "v2_model_ready"}


def match(path: str) -> tuple[str, dict[str, str]] | None:
    """The endpoint a path names and its parameters (``name``, ``version``), or None."""
    endpoint = _FIXED.get(path)
    if endpoint is not None:
        return endpoint, {}
    if not path.startswith("/v2/models/"):
        return None
    # "", "v2", "models", name, then [ending] or "versions", version, [ending]
    parts = path.split("/")[3:]
    params = {"name": parts[0]}
    if len(parts) >= 3 and parts[1] == "versions":
        params["version"] = parts[2]
        rest = parts[3:]
    else:
        rest = parts[1:]
    if not all(params.values()) or len(rest) > 1:
        return None
    if not rest:
        return "v2_model", params
    ending = _V2_ENDINGS.get(rest[0])
    return (ending, params) if ending is not None else None


class Disconnected(Exception):
    """The client went away before its request body arrived."""


def request_headers(raw: list[tuple[bytes, bytes]]) -> tuple[str, str | None, bytes | None]:
    """(content type, ``X-Mlgate-Key``, Content-Length) from ASGI's lower-case header pairs."""
    content_type = key = length = None
    for name, value in raw:
        if name == b"content-type":
            content_type = content_type or value.decode("latin-1")
        elif name == b"content-length":
            length = length or value
        elif name == b"x-mlgate-key":
            key = key or value.decode("latin-1")
    return content_type or "application/json", key, length


async def read_body(receive: Any, limit: int, length: bytes | None) -> bytes:
    """The request body, refused (ScoringInputError, 413) beyond ``limit`` bytes."""
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise ScoringInputError("bad Content-Length header", 400) from None
        if declared > limit:
            raise ScoringInputError(
                f"request body of {declared} bytes exceeds the {limit}-byte limit", 413
            )
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            raise Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ScoringInputError(f"request body exceeds the {limit}-byte limit", 413)
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class App:
    """The ASGI application: each request to its :class:`Handlers` method."""

    def __init__(self, handlers: Handlers) -> None:
        self.handlers = handlers
        self._paths: dict[str, tuple[str, dict[str, str]] | None] = {}  # match()'s answers

    def endpoint(self, path: str) -> tuple[str, dict[str, str]] | None:
        """:func:`match`, remembered for the first 256 paths asked for (a V2 path is split)."""
        try:
            return self._paths[path]
        except KeyError:
            found = match(path)
            if len(self._paths) < 256:
                self._paths[path] = found
            return found

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            try:
                reply = await self.answer(scope, receive)
            except Disconnected:
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": reply.status,
                    "headers": [*reply.headers, (b"content-length", b"%d" % len(reply.body))],
                }
            )
            await send({"type": "http.response.body", "body": reply.body})
        elif kind == "lifespan":
            await self.lifespan(receive, send)

    async def answer(self, scope: Any, receive: Any) -> Reply:
        """The reply to one HTTP request."""
        h = self.handlers
        method, path = scope["method"], scope["path"]
        found = self.endpoint(path)
        if found is None:
            return h.not_found(path)
        endpoint, params = found
        if endpoint not in _SCORING:
            if method not in ("GET", "HEAD"):  # uvicorn sends no body for HEAD
                return h.not_allowed(method, path)
            if endpoint == "metrics" and h.telemetry.workers is not None:
                # with workers, a scrape asks the other processes over their sockets: off the
                # event loop, so scoring and health checks never wait behind it
                return await asyncio.get_running_loop().run_in_executor(None, h.metrics)
            return _GET[endpoint](h, params)
        if method != "POST":
            return h.not_allowed(method, path)
        content_type, key, length = request_headers(scope["headers"])
        try:
            body = await read_body(receive, h.config.max_body_bytes, length)
        except ScoringInputError as exc:
            return h.refused(exc, protocol="mlflow" if endpoint == "invocations" else "v2")
        if endpoint == "invocations":
            return await h.invocations(body, content_type, key)
        return await h.v2_infer(params["name"], body, version=params.get("version"), key=key)

    async def lifespan(self, receive: Any, send: Any) -> None:
        """Start following the registry at startup; stop at shutdown."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.handlers.follower.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.handlers.follower.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

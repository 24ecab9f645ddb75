"""A short way in for the scoring requests, in front of the Starlette app.

Under load a scoring request spent more time in Starlette's stack than in mlgate's handler:
the error and exception middlewares, the router trying each route's pattern, and the wrappers
that turn a handler into an ASGI app. :class:`FastLane` recognises ``POST /invocations`` and
``POST /v2/models/{name}[/versions/{version}]/infer`` by their path alone and calls the same
handlers directly (with a Starlette ``Request`` and ``Response``, so they behave the same);
everything else, and the lifespan, goes to the app. The handlers answer every error they
expect themselves; an unexpected exception is left to uvicorn, which answers 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[Any], Awaitable[Any]]


def v2_infer_params(path: str) -> dict[str, str] | None:
    """``{"name": ..., ["version": ...]}`` for a V2 infer path, else None."""
    parts = path.split("/")
    # "", "v2", "models", name, "infer"  or  "", "v2", "models", name, "versions", v, "infer"
    if len(parts) == 5 and parts[4] == "infer" and parts[3]:
        return {"name": parts[3]}
    if len(parts) == 7 and parts[6] == "infer" and parts[4] == "versions" and parts[3] and parts[5]:
        return {"name": parts[3], "version": parts[5]}
    return None


class FastLane:
    """ASGI app: scoring requests straight to their handlers, the rest to ``app``."""

    def __init__(self, app: Any, *, invocations: Handler, infer: Handler) -> None:
        from starlette.requests import Request

        self._request = Request
        self.app = app
        self.state = app.state
        self.invocations = invocations
        self.infer = infer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            handler: Handler | None = None
            if path == "/invocations":
                handler = self.invocations
            elif path.startswith("/v2/models/") and (params := v2_infer_params(path)):
                scope["path_params"] = params
                handler = self.infer
            if handler is not None:
                scope.setdefault("app", self.app)
                response = await handler(self._request(scope, receive, send))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

"""The request handlers of ``mlgate serve``: one :class:`Handlers` per server, one method per
endpoint, each returning a :class:`Reply`. No HTTP here (that is :mod:`mlgate.serving.asgi`), so
tests call the methods in-process with real loaded models.

Scoring requests (``/invocations``, V2 ``/infer``) share one path: the serving state taken at the
start, the route (split, shadow, sticky key), the adaptive batcher, the telemetry and the shadow
copy. Client mistakes are 4xx in each protocol's error shape: MLflow's
``{"error_code", "message"}`` and V2's ``{"error"}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from functools import partial
from typing import Any, NamedTuple

import numpy as np

from mlgate._version import __version__
from mlgate.errors import ScoringInputError
from mlgate.registry.pyfunc import parse_scoring_request, predictions_json
from mlgate.serving import v2
from mlgate.serving.fastpath import parse_rows, plain_json
from mlgate.serving.follower import Follower, LoadedVersion, ServeConfig, ServingState
from mlgate.serving.routing import Route
from mlgate.serving.telemetry import Telemetry

log = logging.getLogger("mlgate.serve")

Headers = list[tuple[bytes, bytes]]
JSON: Headers = [(b"content-type", b"application/json")]
TEXT: Headers = [(b"content-type", b"text/plain; charset=utf-8")]
PROMETHEUS: Headers = [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]
# Predictions whose ``tolist()`` json.dumps writes exactly as MLflow's encoder does.
_PLAIN_KINDS = frozenset("biufU")


class Reply(NamedTuple):
    """An HTTP answer: status, body and headers (lower-case names, as ASGI sends them)."""

    status: int
    body: bytes
    headers: Headers = JSON

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode("latin-1")
        return next((v.decode("latin-1") for k, v in self.headers if k == wanted), None)


def json_reply(status: int, payload: Any, headers: Headers = JSON) -> Reply:
    return Reply(status, json.dumps(payload).encode(), headers)


def mlflow_error(status: int, code: str, message: str, headers: Headers = JSON) -> Reply:
    """MLflow's scoring server error shape."""
    return json_reply(status, {"error_code": code, "message": message}, headers)


def v2_error(status: int, message: str, headers: Headers = JSON) -> Reply:
    """The Open Inference Protocol's error shape."""
    return json_reply(status, {"error": message}, headers)


def predictions_body(predictions: Any) -> bytes:
    """``{"predictions": ...}`` exactly as MLflow's scoring server writes it (its encoder is pure
    Python: an array of plain numbers or strings is written by :func:`plain_json` instead)."""
    if type(predictions) is np.ndarray and predictions.dtype.kind in _PLAIN_KINDS:
        return b'{"predictions": %s}' % plain_json(predictions.tolist(), predictions.dtype.kind)
    return predictions_json(predictions).encode()


def _agree(a: Any, b: Any) -> bool:
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (ValueError, TypeError):
        return False


class Handlers:
    """Every endpoint of one server, as methods a test can call in-process."""

    def __init__(
        self,
        config: ServeConfig,
        follower: Follower,
        *,
        telemetry: Telemetry | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.follower = follower
        self.telemetry = telemetry or Telemetry(config.model)
        self._draw = (rng or random.Random()).random  # noqa: S311 - traffic split, not security
        self._headers: dict[Route, Headers] = {}

    # ------------------------------------------------------------------ shared by both protocols
    def ready_state(self) -> ServingState | None:
        """The serving state, when its champion is loaded."""
        state = self.follower.state
        if state is None or state.table.champion not in state.loaded:
            return None
        return state

    def refused(self, exc: ScoringInputError, *, protocol: str = "mlflow") -> Reply:
        """A request refused before it reached a version (unreadable or oversized body...)."""
        self.telemetry.refused()
        if protocol == "v2":
            return v2_error(exc.status, exc.message)
        code = "BAD_REQUEST" if exc.status == 400 else "INVALID_REQUEST"
        return mlflow_error(exc.status, code, exc.message)

    def route_headers(self, route: Route) -> Headers:
        """The response headers that say which version answered (built once per route)."""
        headers = self._headers.get(route)
        if headers is None:
            version, role = route.version.encode("latin-1"), route.role.encode("latin-1")
            headers = [*JSON, (b"x-mlgate-version", version), (b"x-mlgate-role", role)]
            self._headers[route] = headers
        return headers

    def _shadow(
        self, state: ServingState, route: Route, loaded: LoadedVersion, inputs: Any, preds: Any
    ) -> None:
        """Score a copy of the request on the shadow version; count its agreement later."""
        shadow = state.loaded.get(route.shadow) if route.shadow is not None else None
        if shadow is None:
            return
        rows, data, params = inputs
        if rows is not None and shadow.schema == loaded.schema:  # same columns and dtypes
            pending = shadow.batcher.submit_rows(rows)
        else:
            frame = loaded.schema.frame(rows) if rows is not None and loaded.schema else data
            pending = shadow.batcher.submit(frame, params)
        pending.add_done_callback(partial(self._shadow_done, shadow.version, preds))

    def _shadow_done(self, version: str, champion: Any, pending: asyncio.Future[Any]) -> None:
        failed = pending.cancelled() or pending.exception() is not None
        agreed = None if failed else _agree(pending.result(), champion)
        self.telemetry.shadow(version, agreed=agreed)

    # ------------------------------------------------------------------ MLflow's protocol
    async def invocations(
        self, body: bytes, content_type: str = "application/json", key: str | None = None
    ) -> Reply:
        """``POST /invocations``: MLflow's scoring protocol, routed by the registry's rules."""
        started = time.perf_counter()
        state = self.ready_state()
        if state is None:
            return mlflow_error(503, "NOT_READY", "the champion version is not loaded yet")
        if not body.strip():
            return self.refused(ScoringInputError("empty request body", 400))
        route = state.table.route(key, self._draw())
        loaded = state.loaded[route.version]
        headers = self.route_headers(route)
        try:
            rows = parse_rows(body, content_type, loaded.schema)
            if rows is not None:
                data, params = None, None
                pending = loaded.batcher.submit_rows(rows)
            else:
                data, params = parse_scoring_request(body, content_type, loaded.model)
                pending = loaded.batcher.submit(data, params)
            preds = await pending
            text = predictions_body(preds)
        except ScoringInputError as exc:
            self.telemetry.request(route.version, route.role, exc.status, _since(started))
            code = "BAD_REQUEST" if exc.status == 400 else "UNSUPPORTED_MEDIA_TYPE"
            return mlflow_error(exc.status, code, exc.message, headers)
        except asyncio.TimeoutError:
            self.telemetry.request(route.version, route.role, 503, _since(started))
            message = f"scoring took longer than {self.config.timeout:g} s"
            return mlflow_error(503, "TIMEOUT", message, headers)
        except Exception as exc:
            log.exception("unexpected error scoring version %s", route.version)
            self.telemetry.request(route.version, route.role, 500, _since(started))
            return mlflow_error(500, "INTERNAL_ERROR", type(exc).__name__, headers)
        self.telemetry.request(route.version, route.role, 200, _since(started), preds)
        if route.shadow is not None:
            self._shadow(state, route, loaded, (rows, data, params), preds)
        return Reply(200, text, headers)

    # ------------------------------------------------------------------ operations
    def ping(self) -> Reply:
        """``GET /ping``: 200 once the champion is loaded."""
        if self.ready_state() is None:
            return Reply(503, b"not ready\n", TEXT)
        return Reply(200, b"\n", TEXT)

    def health(self) -> Reply:
        """``GET /health``: readiness, what serves, the registry's and loading's state."""
        state = self.follower.state
        ready = self.ready_state() is not None
        status = self.follower.status
        registry = None
        if not self.follower.local:
            registry = {
                "reachable": status.registry_ok,
                "last_poll": status.last_poll,
                "error": status.last_error,
            }
        payload = {
            "status": "ok" if ready else "not_ready",
            "model": self.config.model,
            "champion": state.table.champion if state else None,
            "challenger": state.table.challenger if state else None,
            "source": "model_dir" if self.follower.local else "registry",
            "registry": registry,
            "load_errors": dict(status.load_errors),
        }
        return json_reply(200 if ready else 503, payload)

    def version(self) -> Reply:
        """``GET /version``: each serving version, its role, weight and scoring path."""
        state = self.follower.state
        if state is None:
            return json_reply(
                503, {"model": self.config.model, "serving": [], "mlgate": __version__}
            )
        t = state.table
        weight = t.traffic.challenger_weight if t.challenger and t.challenger != t.champion else 0.0
        split = t.traffic.mode == "split"
        serving = []
        for role, v in (("champion", t.champion), ("challenger", t.challenger)):
            if v is None or v not in state.loaded:
                continue
            if role == "champion":
                share = 100.0 - weight if split else 100.0
            else:
                share = weight if split else 0.0
            loaded = state.loaded[v]
            serving.append(
                {
                    "role": role,
                    "version": v,
                    "weight": share,
                    "verified": loaded.verified,
                    "scoring": loaded.batcher.path,
                }
            )
        payload = {
            "model": self.config.model,
            "mode": t.traffic.mode,
            "serving": serving,
            "generation": state.generation,
            "mlgate": __version__,
        }
        return json_reply(200, payload)

    def metrics(self) -> Reply:
        """``GET /metrics``: the per-version counters in Prometheus' text format."""
        return Reply(200, self.telemetry.render().encode(), PROMETHEUS)

    def not_found(self, path: str) -> Reply:
        if path.startswith("/v2/"):
            return v2_error(404, f"no route {path}")
        return mlflow_error(404, "NOT_FOUND", f"no route {path}")

    def not_allowed(self, method: str, path: str) -> Reply:
        message = f"{method} is not allowed on {path}"
        if path.startswith("/v2/"):
            return v2_error(405, message)
        return mlflow_error(405, "METHOD_NOT_ALLOWED", message)

    # ------------------------------------------------------------------ the Open Inference Protocol
    def spec(self, loaded: LoadedVersion) -> v2.ModelSpec:
        """The V2 view of a loaded version, computed at its first request."""
        spec: v2.ModelSpec | None = loaded.views.get("v2")
        if spec is None:
            spec = loaded.views["v2"] = v2.model_spec(loaded.model, loaded.schema)
        return spec

    def _v2_target(
        self, name: str, version: str | None
    ) -> tuple[ServingState, LoadedVersion | None]:
        """(state, the version asked for, or None for "route it"); raises V2Error."""
        if name != self.config.model:
            raise v2.V2Error(
                f"model {name!r} is not served here; this server serves {self.config.model!r}", 404
            )
        state = self.ready_state()
        if version is None:
            if state is None:
                raise v2.V2Error(
                    f"model {name!r} is not ready: its champion is not loaded yet", 503
                )
            return state, None
        if state is not None and version in state.loaded:
            return state, state.loaded[version]
        failed = self.follower.status.load_errors.get(version)
        if failed:
            raise v2.V2Error(f"version {version} of {name!r} is not loaded: {failed}", 400)
        serving = ", ".join(state.loaded) if state is not None else "none yet"
        raise v2.V2Error(
            f"version {version} of {name!r} is not served here (loaded: {serving})", 404
        )

    def v2_server(self) -> Reply:
        """``GET /v2``: server metadata."""
        return json_reply(200, {"name": "mlgate", "version": __version__, "extensions": []})

    def v2_live(self) -> Reply:
        """``GET /v2/health/live``."""
        return json_reply(200, {"live": True})

    def v2_ready(self) -> Reply:
        """``GET /v2/health/ready``: 200 once the champion is loaded."""
        ready = self.ready_state() is not None
        return json_reply(200 if ready else 503, {"ready": ready})

    def v2_model_ready(self, name: str, version: str | None = None) -> Reply:
        """``GET /v2/models/{name}[/versions/{version}]/ready``."""
        try:
            self._v2_target(name, version)
        except v2.V2Error as exc:
            if exc.status == 404:
                return v2_error(404, exc.message)
            return json_reply(400, {"name": name, "ready": False, "error": exc.message})
        return json_reply(200, {"name": name, "ready": True})

    def v2_model(self, name: str, version: str | None = None) -> Reply:
        """``GET /v2/models/{name}[/versions/{version}]``: metadata from the MLflow signature."""
        try:
            state, loaded = self._v2_target(name, version)
        except v2.V2Error as exc:
            return v2_error(exc.status, exc.message)
        loaded = loaded or state.loaded[state.table.champion or ""]
        spec = self.spec(loaded)
        if version is None:
            versions = [v for v in state.table.versions() if v in state.loaded]
        else:
            versions = [loaded.version]
        payload = {
            "name": self.config.model,
            "versions": versions,
            "platform": "mlflow",
            "inputs": spec.inputs,
            "outputs": spec.outputs,
            "parameters": {"content_type": spec.content_type},
        }
        return json_reply(200, payload)

    async def v2_infer(
        self, name: str, body: bytes, *, version: str | None = None, key: str | None = None
    ) -> Reply:
        """``POST /v2/models/{name}[/versions/{version}]/infer``: routed like ``/invocations``,
        or to the one loaded version asked for."""
        started = time.perf_counter()
        # the common request (routed, to this model, ready) needs no target lookup
        state = self.ready_state() if version is None and name == self.config.model else None
        target = None
        if state is None:
            try:
                state, target = self._v2_target(name, version)
            except v2.V2Error as exc:
                return self.refused(exc, protocol="v2")
        if target is None:
            route = state.table.route(key, self._draw())
            loaded = state.loaded[route.version]
        else:
            loaded = target
            role = "champion" if loaded.version == state.table.champion else "challenger"
            route = Route(loaded.version, role)
        headers = self.route_headers(route)
        try:
            decoded = v2.decode(body, self.spec(loaded))
            if decoded.rows is not None:
                pending = loaded.batcher.submit_rows(decoded.rows)
            else:
                pending = loaded.batcher.submit(decoded.data, decoded.params)
            preds = await pending
            text = v2.response_body(self.config.model, route.version, decoded, preds)
        except v2.V2Error as exc:
            status, text = exc.status, _v2_error_body(exc.message)
        except ScoringInputError as exc:  # the model refused it: say how it misses the signature
            why = v2.mismatch(body, self.spec(loaded))
            message = f"the model rejected the input: {why}" if why else exc.message
            status, text = exc.status, _v2_error_body(message)
        except asyncio.TimeoutError:
            status = 503
            text = _v2_error_body(f"scoring took longer than {self.config.timeout:g} s")
        except Exception as exc:
            log.exception("unexpected error scoring version %s (V2)", route.version)
            status, text = 500, _v2_error_body(f"internal error: {type(exc).__name__}")
        else:
            self.telemetry.request(route.version, route.role, 200, _since(started), preds)
            if route.shadow is not None:
                self._shadow(
                    state, route, loaded, (decoded.rows, decoded.data, decoded.params), preds
                )
            return Reply(200, text, headers)
        self.telemetry.request(route.version, route.role, status, _since(started))
        return Reply(status, text, headers)


def _v2_error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def _since(started: float) -> float:
    return time.perf_counter() - started

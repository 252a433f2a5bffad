"""`create_app(settings)`: the Litestar application and its lifespan.

The lifespan opens the gateway's resources before the first request and closes them after the
last one has finished (uvicorn stops accepting and drains in-flight requests first). Every
error becomes the JSON body `{"status", "error", "message"}` in `_error_response`, the one
place that maps errors to answers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from litestar import Litestar, Request, Response, Router
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware

from appliance import wire
from appliance.cors import IngestCORSMiddleware
from appliance.errors import GatewayError
from appliance.gateway import Gateway
from appliance.request_metrics import request_metrics_middleware
from appliance.routes.admin import backup, status, sync_now
from appliance.routes.health import healthz, readyz
from appliance.routes.metrics import metrics
from appliance.routes.status_page import status_page
from appliance.routes.track import device_id, track, track_batch
from appliance.routes.upstream_health import upstream_health
from appliance.scheduler import build_scheduler
from appliance.schema import openapi_config
from appliance.settings import Settings

log = logging.getLogger(__name__)


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response[bytes]:
    body = wire.ErrorBody(status=status, error=HTTPStatus(status).phrase, message=message)
    return Response(
        content=wire.encoder.encode(body), status_code=status, media_type="application/json", headers=headers
    )


def _gateway_error(request: Request[Any, Any, Any], exc: GatewayError) -> Response[bytes]:
    if exc.status_code >= 500:
        log.error("%s: %s", type(exc).__name__, exc.message)
    elif exc.status_code in (400, 401, 403, 413, 415):
        _log_refusal(request, exc)
    return _error_response(exc.status_code, exc.message, exc.headers)


def _log_refusal(request: Request[Any, Any, Any], exc: GatewayError) -> None:
    """A refused request, logged once per cause and interval: a kiosk with a wrong secret shows up
    in the log without filling it."""
    gateway: Gateway | None = getattr(request.app.state, "gateway", None)
    if gateway is None:
        return
    repeats = gateway.refusals
    peer = request.client.host if request.client else "?"
    client_id = request.headers.get("openpanel-client-id", "")
    cause = f"{exc.status_code} {request.url.path} {peer} {client_id} {exc.message[:80]}"
    repeats.log(logging.WARNING, cause, "%d on %s from %s (client id %s): %s", exc.status_code, request.url.path,
                peer, client_id or "none", exc.message)


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    return _error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    # The only catch-all: log with the traceback, answer without internals.
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error_response(500, "internal error; nothing of this request was stored unless it was acknowledged")


def create_app(settings: Settings, clock: Callable[[], int] | None = None) -> Litestar:
    """Build the application for `settings`; resources open in the lifespan, not here.

    `clock` (epoch milliseconds) replaces the wall clock, for tests that move time.
    """
    gateway = Gateway(settings, clock)
    # Only the ingest routes speak CORS: the middleware sits on their router, not on the app.
    ingest = Router(
        path="/", route_handlers=[track, track_batch, device_id], middleware=[DefineMiddleware(IngestCORSMiddleware)]
    )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        try:
            gateway.open()
        except Exception as exc:
            # `serve` prints this one line instead of the lifespan's traceback (appliance.server).
            first_line = (str(exc).strip().splitlines() or [""])[0][:300]
            app.state.startup_error = f"cannot start: {type(exc).__name__}: {first_line}"
            raise
        app.state.gateway = gateway
        # The status page's first point; taken here, not by a job, so no read is still running
        # on the store when a short-lived app shuts down.
        await gateway.record_history()
        scheduler = build_scheduler(gateway)
        scheduler.start()
        try:
            yield
        finally:
            scheduler.shutdown(wait=False)
            gateway.close()

    return Litestar(
        route_handlers=[ingest, healthz, readyz, status, sync_now, metrics, upstream_health, backup, status_page],
        lifespan=[lifespan],
        middleware=[request_metrics_middleware],
        exception_handlers={
            GatewayError: _gateway_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
        # Bodies are read as a stream by `appliance.body`, which enforces the real limit after
        # decompression; Litestar's own cap would count compressed bytes.
        request_max_body_size=None,
        # One log format for the whole process (appliance.logs), not Litestar's own handler.
        logging_config=None,
        openapi_config=openapi_config(),
        debug=False,
    )

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
from litestar.openapi import OpenAPIConfig

from appliance import __version__, wire
from appliance.cors import IngestCORSMiddleware
from appliance.errors import GatewayError
from appliance.gateway import Gateway
from appliance.routes.admin import status, sync_now
from appliance.routes.health import healthz, readyz
from appliance.routes.track import device_id, track, track_batch
from appliance.scheduler import build_scheduler
from appliance.settings import Settings

log = logging.getLogger(__name__)


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response[bytes]:
    body = wire.ErrorBody(status=status, error=HTTPStatus(status).phrase, message=message)
    return Response(
        content=wire.encoder.encode(body), status_code=status, media_type="application/json", headers=headers
    )


def _gateway_error(_: Request[Any, Any, Any], exc: GatewayError) -> Response[bytes]:
    if exc.status_code >= 500:
        log.error("%s: %s", type(exc).__name__, exc.message)
    return _error_response(exc.status_code, exc.message, exc.headers)


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
        gateway.open()
        app.state.gateway = gateway
        scheduler = build_scheduler(gateway)
        scheduler.start()
        try:
            yield
        finally:
            scheduler.shutdown(wait=False)
            gateway.close()

    return Litestar(
        route_handlers=[ingest, healthz, readyz, status, sync_now],
        lifespan=[lifespan],
        exception_handlers={
            GatewayError: _gateway_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
        # Bodies are read as a stream by `appliance.body`, which enforces the real limit after
        # decompression; Litestar's own cap would count compressed bytes.
        request_max_body_size=None,
        openapi_config=OpenAPIConfig(title="Edge analytics gateway", version=__version__, path="/schema"),
        debug=False,
    )

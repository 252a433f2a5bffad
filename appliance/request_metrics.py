"""ASGI middleware counting every answered request by route and status, with its duration.

Input: each HTTP request passing through the app. Output: `gateway_requests_total{route,status}`
and `gateway_request_duration_seconds{route}`, or for a 503 (most are refused before their body is read)
`gateway_refused_request_duration_seconds{route}`. The labelled children are cached, so a
request costs two clock reads, one increment and one observation.
"""

from __future__ import annotations

import time
from http import HTTPStatus
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from appliance.metrics import route_label


def request_metrics_middleware(app: ASGIApp) -> ASGIApp:
    """Wrap `app`; the metrics are the gateway's, found on the app's state per request."""
    counters: dict[tuple[str, int], Any] = {}
    histograms: dict[tuple[str, int], Any] = {}

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # a request that dies before its answer starts is an internal error

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_and_note)
        finally:
            route = route_label(scope["path"])
            metrics = scope["app"].state.gateway.metrics
            counter = counters.get((route, status))
            if counter is None:
                counter = counters[(route, status)] = metrics.requests.labels(route, str(status))
            histogram = histograms.get((route, status))
            if histogram is None:
                chosen = metrics.refused_request_duration if status == HTTPStatus.SERVICE_UNAVAILABLE else (
                    metrics.request_duration)
                histogram = histograms[(route, status)] = chosen.labels(route)
            counter.inc()
            histogram.observe(time.perf_counter() - started)

    return middleware

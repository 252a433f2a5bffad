"""`GET /metrics`: Prometheus text (docs/contract.md §3.6), to `server.metrics_networks` only.

Input: the scrape request. Output: every `gateway_*` metric and the process collector's, with
the gauges of stored state (backlog, quarantine, sessions, disk) read at this moment.
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get

from appliance.errors import GatewayError
from appliance.gateway import Gateway
from appliance.metrics import CONTENT_TYPE
from appliance.networks import peer_in


class MetricsForbidden(GatewayError):
    status_code = 403


@get("/metrics", include_in_schema=False)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The registry in Prometheus' text format."""
    gateway: Gateway = request.app.state.gateway
    if not peer_in(request, gateway.metrics_networks):
        raise MetricsForbidden("/metrics answers only clients in server.metrics_networks (loopback by default)")
    gateway.metrics.set_state(await gateway.metrics_snapshot())
    body = await asyncio.to_thread(gateway.metrics.render)
    return Response(content=body, media_type=CONTENT_TYPE)

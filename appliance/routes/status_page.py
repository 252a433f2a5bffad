"""`GET /admin`: the status page (docs/contract.md §3.6), to `server.admin_networks` only.

Input: the request. Output: the HTML of `appliance.status_page` for this gateway now, with a
Content-Security-Policy that lets the browser load nothing from anywhere.
"""

from __future__ import annotations

import time
from typing import Any

from litestar import Request, Response, get

from appliance.cli import health_of
from appliance.routes.admin import admin_gateway, identity_and_health
from appliance.status_page import CONTENT_SECURITY_POLICY, render


@get("/admin", include_in_schema=False)
async def status_page(request: Request[Any, Any, Any]) -> Response[str]:
    """The status page: identity, health, ingest, outcomes, upstream, storage, charts."""
    gateway = admin_gateway(request)
    status = await gateway.status()
    status.update(await identity_and_health(gateway))
    code, reasons = health_of(status)
    status["health"] = {"state": ("healthy", "degraded", "down")[code], "reasons": reasons}
    outcomes: dict[str, dict[str, float]] = {}
    for family in gateway.metrics.events.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels["project"] and sample.value:
                outcomes.setdefault(sample.labels["project"], {})[sample.labels["outcome"]] = sample.value
    now = time.time()
    samples = [*gateway.history.samples(), await gateway.sample_now()]
    page = render(status, outcomes, samples, now)
    return Response(content=page, media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-store"})

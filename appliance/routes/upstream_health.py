"""`GET /healthz/upstream`: has the upstream accepted a sync pass recently?

Input: the gateway's last successful sync pass. Output: `200 {"status": "ok", ...}` while a pass
succeeded within `health.max_upstream_silence_seconds` (or no upstream is configured), else
`503` naming how long it has been and the last error. Kept apart from `/readyz`: the gateway
keeps accepting (and storing) events while the upstream is down, which is what it is for.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from appliance import wire
from appliance.gateway import Gateway


@get("/healthz/upstream")
async def upstream_health(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Upstream freshness, for monitoring (a load balancer should use /readyz)."""
    gateway: Gateway = request.app.state.gateway
    body = upstream_state(gateway)
    return Response(content=wire.encoder.encode(body), status_code=503 if body["status"] == "failing" else 200,
                    media_type="application/json")


def upstream_state(gateway: Gateway) -> dict[str, Any]:
    """`{"status": "ok" | "failing" | "none", "silent_seconds", "last_error"}`."""
    silence_ms = gateway.upstream_silence_ms()
    if silence_ms is None:
        return {"status": "none", "silent_seconds": None, "last_error": None}
    limit = gateway.settings.health.max_upstream_silence_seconds
    last = gateway.sync.last_result if gateway.sync else None
    status = "ok" if silence_ms / 1000 <= limit else "failing"
    body: dict[str, Any] = {"status": status, "silent_seconds": round(silence_ms / 1000, 1),
                            "max_silence_seconds": limit, "last_error": last.error if last else None}
    if status == "failing":
        body["reason"] = (f"no sync pass has succeeded for {silence_ms / 1000:.0f}s "
                          f"(health.max_upstream_silence_seconds = {limit:.0f})")
    return body

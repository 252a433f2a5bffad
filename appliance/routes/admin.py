"""`GET /admin/status` and `POST /admin/sync` (SPEC §3.6), for operators and the CLI.

Loopback only: the admin endpoints answer only peers on 127.0.0.0/8 or ::1, whatever the
listening address, because the CLI on the box itself is their user.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import msgspec
from litestar import Request, Response, get, post

from appliance import wire
from appliance.errors import GatewayError
from appliance.gateway import Gateway
from sync import ledger


class Forbidden(GatewayError):
    status_code = 403


def _admin(request: Request[Any, Any, Any]) -> Gateway:
    host = request.client.host if request.client else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "testclient"  # Litestar's in-process test client
    if not loopback:
        raise Forbidden("admin endpoints answer loopback clients only")
    gateway: Gateway = request.app.state.gateway
    return gateway


@get("/admin/status")
async def status(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Backlog per table, last sync result, open sessions."""
    gateway = _admin(request)

    def read(store: Any) -> dict[str, Any]:
        open_sessions = store.connection.execute("SELECT count(*) FROM sessions WHERE NOT closed").fetchone()[0]
        quarantined = store.connection.execute("SELECT count(*) FROM sync_quarantine").fetchone()[0]
        return {"backlog": ledger.backlog(store.connection), "open_sessions": int(open_sessions),
                "quarantined_rows": int(quarantined)}

    body = await gateway.writer.call(read)
    job = gateway.sync
    body["upstream"] = gateway.settings.upstream.url.split("@")[-1] if job else None  # never the password
    body["last_sync"] = msgspec.to_builtins(job.last_result) if job and job.last_result else None
    return Response(content=wire.encoder.encode(body), media_type="application/json")


@post("/admin/sync", status_code=200)
async def sync_now(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Run one sync pass now (at most `?max_batches=N` batches, for progress) and answer its result."""
    gateway = _admin(request)
    limit = request.query_params.get("max_batches", "")
    max_batches = int(limit) if limit.isdigit() and int(limit) > 0 else None
    if gateway.sync is None:
        return Response(content=b'{"error":"no upstream configured (upstream.url is empty)"}',
                        status_code=409, media_type="application/json")
    result = await gateway.sync.run_once(max_batches=max_batches)
    return Response(content=wire.encoder.encode(msgspec.to_builtins(result)), media_type="application/json")

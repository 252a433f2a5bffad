"""`GET /admin/status`, `POST /admin/sync` and `POST /admin/backup` (docs/contract.md §3.6), for operators
and the CLI.

They answer only peers inside `server.admin_networks` (loopback by default), whatever the
listening address, because the CLI on the box itself is their user.
"""

from __future__ import annotations

from typing import Any

import duckdb
import msgspec
from litestar import Request, Response, get, post

from appliance import __version__, wire
from appliance.errors import BadRequest, Conflict, GatewayError
from appliance.gateway import Gateway
from appliance.networks import peer_in
from appliance.routes.health import not_ready_reason
from appliance.routes.upstream_health import upstream_state


class Forbidden(GatewayError):
    status_code = 403


def admin_gateway(request: Request[Any, Any, Any]) -> Gateway:
    """The gateway, for a peer inside `server.admin_networks`; else 403."""
    gateway: Gateway = request.app.state.gateway
    if not peer_in(request, gateway.admin_networks):
        raise Forbidden("admin endpoints answer only clients in server.admin_networks (loopback by default)")
    return gateway


def _max_batches(text: str | None) -> int | None:
    """`?max_batches=N`: a positive ASCII integer ("²" passes str.isdigit and breaks int())."""
    if text is None or text == "":
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 9 and int(text) > 0):
        raise BadRequest(f"max_batches: must be a positive integer, got {text[:32]!r}")
    return int(text)


@get("/admin/status")
async def status(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Backlog per table, last sync result, open sessions; identity, readiness and disk."""
    gateway = admin_gateway(request)
    body = await gateway.status()
    body.update(await identity_and_health(gateway))
    return Response(content=wire.encoder.encode(body), media_type="application/json")


@post("/admin/sync", status_code=200)
async def sync_now(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Run one sync pass now (at most `?max_batches=N` batches, for progress) and answer its result."""
    gateway = admin_gateway(request)
    max_batches = _max_batches(request.query_params.get("max_batches"))
    if gateway.sync is None:
        raise Conflict("no upstream configured (upstream.url is empty): nothing to sync")
    result = await gateway.sync.run_once(max_batches=max_batches)
    return Response(content=wire.encoder.encode(msgspec.to_builtins(result)), media_type="application/json")


async def identity_and_health(gateway: Gateway) -> dict[str, Any]:
    """Who this gateway is, how long it runs, whether it is ready and the upstream fresh."""
    reason = await not_ready_reason(gateway)
    return {"gateway_id": gateway.settings.gateway.id, "version": __version__,
            "uptime_seconds": round((gateway.clock() - gateway.started_ms) / 1000, 1),
            "ready": "ready" if reason is None else reason, "upstream_health": upstream_state(gateway),
            "storage_bytes": gateway.disk.used_bytes(), "disk_free_bytes": gateway.disk.free_bytes()}


class BackupRequest(msgspec.Struct, forbid_unknown_fields=True):
    path: str


@post("/admin/backup", status_code=200)
async def backup(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Copy the store to a new DuckDB file at `{"path"}`, between two commits (a consistent copy)."""
    gateway = admin_gateway(request)
    try:
        target = msgspec.json.decode(await request.body(), type=BackupRequest)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"body: {exc}") from None
    if not target.path.startswith("/"):
        raise BadRequest("path: must be absolute (it is on the gateway's machine)")
    try:
        size = await gateway.writer.call(lambda store: store.copy_to(target.path))
    except (OSError, duckdb.Error) as exc:
        raise BadRequest(f"backup to {target.path} failed: {exc}") from None
    return Response(content=wire.encoder.encode({"path": target.path, "bytes": size}), media_type="application/json")

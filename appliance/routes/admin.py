"""`GET /admin/status` and `POST /admin/sync` (SPEC §3.6), for operators and the CLI.

They answer only peers inside `server.admin_networks` (loopback by default), whatever the
listening address, because the CLI on the box itself is their user.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import msgspec
from litestar import Request, Response, get, post

from appliance import wire
from appliance.errors import BadRequest, GatewayError
from appliance.gateway import Gateway


class Forbidden(GatewayError):
    status_code = 403


def _admin(request: Request[Any, Any, Any]) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not any(address in network for network in gateway.admin_networks):
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
    """Backlog per table, last sync result, open sessions."""
    body = await _admin(request).status()
    return Response(content=wire.encoder.encode(body), media_type="application/json")


@post("/admin/sync", status_code=200)
async def sync_now(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Run one sync pass now (at most `?max_batches=N` batches, for progress) and answer its result."""
    gateway = _admin(request)
    max_batches = _max_batches(request.query_params.get("max_batches"))
    if gateway.sync is None:
        return Response(content=b'{"error":"no upstream configured (upstream.url is empty)"}',
                        status_code=409, media_type="application/json")
    result = await gateway.sync.run_once(max_batches=max_batches)
    return Response(content=wire.encoder.encode(msgspec.to_builtins(result)), media_type="application/json")

"""`GET /healthz` (the process answers) and `GET /readyz` (it can store events) (docs/contract.md §3.6)."""

from __future__ import annotations

import asyncio
from typing import Any

import duckdb
from litestar import Request, Response, get

from appliance import wire
from appliance.gateway import Gateway
from storage.store import Store
from storage.writer import WriterStopped

_PING_TIMEOUT_SECONDS = 2.0


@get("/healthz")
async def healthz() -> Response[bytes]:
    """Liveness: the event loop runs."""
    return Response(content=b'{"status":"ok"}', media_type="application/json")


@get("/readyz")
async def readyz(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Readiness: DuckDB writable, disk below its cap, writer keeping up."""
    gateway: Gateway = request.app.state.gateway
    reason = await not_ready_reason(gateway)
    if reason is None:
        return Response(content=b'{"status":"ready"}', media_type="application/json")
    body = wire.encoder.encode({"status": "unavailable", "reason": reason})
    return Response(content=body, status_code=503, media_type="application/json", headers={"Retry-After": "10"})


async def not_ready_reason(gateway: Gateway) -> str | None:
    """Why the gateway cannot store events now, or None."""
    if not gateway.writer.running:
        return "storage writer is not running"
    admission = gateway.admission
    if admission.overloaded(gateway.settings.limits.max_batch_events):
        return (f"busy: {admission.pending_events} events are waiting to be stored "
                f"(limit {admission.max_pending_events}); full batches get 503")
    if gateway.writer.last_commit_error is not None:
        return f"last commit failed: {gateway.writer.last_commit_error}"
    problem = gateway.disk.problem()
    if problem is not None:
        return problem
    try:
        await asyncio.wait_for(gateway.writer.call(Store.ping), _PING_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"storage did not answer within {_PING_TIMEOUT_SECONDS:.0f}s"
    except (WriterStopped, duckdb.Error) as exc:
        return f"storage is not writable: {exc}"
    return None


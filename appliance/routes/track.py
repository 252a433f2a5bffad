"""`POST /track`, `POST /track/batch`, `GET /track/device-id` (docs/contract.md §3).

Each handler is the HTTP side of the event's path: reserve room for its events or answer 503 at
once (`appliance.admission`), authenticate (secret or allowed origin), check disk capacity, read
the body within its limits, build the request's context from its headers; then
`appliance.pipeline` prepares the rows (in a worker thread) and commits them, and the handler
answers, only after the writer has committed them. CORS headers are added around these handlers
by `appliance.cors`.
"""

from __future__ import annotations

from typing import Any

import duckdb
import msgspec
from litestar import Request, Response, get, post

from appliance import pipeline, wire
from appliance.admission import Ticket
from appliance.auth import Client, Credentials
from appliance.body import read_body
from appliance.dispatch import RequestContext
from appliance.enrich.client_ip import client_address
from appliance.enrich.useragent import AgentKind, classify
from appliance.errors import ServiceUnavailable
from appliance.gateway import Gateway
from appliance.identity import device_id as derive_device_id
from appliance.identity import session_id_for
from storage.writer import WriterStopped

_JSON = "application/json"


def _json(value: Any, status_code: int) -> Response[bytes]:
    return Response(content=wire.encoder.encode(value), status_code=status_code, media_type=_JSON)


def _gateway(request: Request[Any, Any, Any]) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _header_credentials(request: Request[Any, Any, Any]) -> Credentials:
    headers = request.headers
    return Credentials(
        client_id=headers.get("openpanel-client-id"),
        client_secret=headers.get("openpanel-client-secret"),
        origin=headers.get("origin"),
    )


async def _authenticated_body(request: Request[Any, Any, Any], gateway: Gateway) -> tuple[Client, bytes]:
    """The sender and the request body, authenticated before any of the body is read.

    Except without an `openpanel-client-id` header: older SDKs send `clientId`/`clientSecret` in
    the body, so it is read first (within the same limits) and its credentials fill the gaps.
    """
    credentials = _header_credentials(request)
    if credentials.client_id:
        client = gateway.auth.authenticate(credentials)
        return client, await _accept_body(request, gateway)
    body = await _accept_body(request, gateway)
    return gateway.auth.authenticate(_with_body_credentials(credentials, body)), body


def _with_body_credentials(credentials: Credentials, body: bytes) -> Credentials:
    try:
        found = wire.credentials_decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return credentials  # no credentials in a body that is not a JSON object
    return credentials.completed_by(found.clientId, found.clientSecret)


async def _context(
    request: Request[Any, Any, Any], gateway: Gateway, client: Client, received_ms: int
) -> RequestContext:
    headers = request.headers
    user_agent = headers.get("user-agent", "")
    try:
        salt, previous_salt = await gateway.salts_for(received_ms)
    except (WriterStopped, duckdb.Error) as exc:  # the day's salt is written on first use
        raise pipeline.storage_error(exc) from exc
    project = client.project
    return RequestContext(
        project_id=project.id,
        received_ms=received_ms,
        user_agent=user_agent,
        # Bots are looked for only among browser pages: a client that proved the secret is
        # first-party whatever its agent says (OpenPanel's is-bot hook skips them too).
        agent=classify(user_agent, project.unknown_agents == "device", detect_bots=not client.has_secret),
        client_ip=client_address(request.client.host if request.client else "", headers, gateway.trusted_proxies),
        salt=salt,
        previous_salt=previous_salt,
        session_timeout_ms=gateway.session_timeout_ms,
        geo=gateway.geo,
        referrers=gateway.referrers,
        live=gateway.live,
        sdk_name=headers.get("openpanel-sdk-name", ""),
        sdk_version=headers.get("openpanel-sdk-version", ""),
    )


async def _accept_body(request: Request[Any, Any, Any], gateway: Gateway) -> bytes:
    problem = gateway.disk.problem()
    if problem is not None:
        raise ServiceUnavailable(f"not accepting events: {problem}", retry_after_seconds=60)
    length = request.headers.get("content-length")
    return await read_body(
        request.stream(),
        content_encoding=request.headers.get("content-encoding"),
        content_length=int(length) if length and length.isascii() and length.isdigit() else None,
        max_bytes=gateway.settings.limits.max_body_bytes,
    )


@post("/track", status_code=200,
      response_description="The event is committed to the gateway's disk (or was before: a duplicate)")
async def track(request: Request[Any, Any, Any]) -> Response[bytes]:
    """One event; `200 {deviceId, sessionId}` once it is stored (or was stored before)."""
    gateway = _gateway(request)
    with gateway.admission.admit(1):
        return await _track(request, gateway)


async def _track(request: Request[Any, Any, Any], gateway: Gateway) -> Response[bytes]:
    received_ms = gateway.clock()
    client, body = await _authenticated_body(request, gateway)
    context = await _context(request, gateway, client, received_ms)
    outcome = await pipeline.store_event(gateway, body, context, client)
    if isinstance(outcome, pipeline.CrawlerEvent):
        return _json({"bot": {"name": context.agent.browser, "userAgent": context.user_agent}}, 202)
    return _json(wire.TrackResponse(deviceId=outcome.device_id, sessionId=outcome.session_id), 200)


@post("/track/batch", status_code=202,
      response_description="Every event answered on its own: accepted and duplicate events are committed to the "
                           "gateway's disk before this answer; rejected ones are listed with index and reason")
async def track_batch(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Up to `max_batch_events` events, each answered on its own (docs/contract.md §3.4)."""
    gateway = _gateway(request)
    max_events = gateway.settings.limits.max_batch_events
    # The most a batch may carry is reserved before its body is read (appliance.admission).
    with gateway.admission.admit(max_events) as ticket:
        return await _track_batch(request, gateway, ticket)


async def _track_batch(request: Request[Any, Any, Any], gateway: Gateway, ticket: Ticket) -> Response[bytes]:
    received_ms = gateway.clock()
    client, body = await _authenticated_body(request, gateway)
    context = await _context(request, gateway, client, received_ms)
    prepared = await pipeline.prepare_batch(gateway, body, context, client)
    del body  # not needed while the rows wait for the writer
    ticket.lower_to(prepared.item_count)
    outcome = await pipeline.commit_batch(gateway, prepared, client.project)
    return _json(
        wire.BatchResponse(
            accepted=outcome.accepted,
            duplicates=outcome.duplicates,
            rejected=[wire.RejectedRow(r.index, str(r.reason), r.error) for r in outcome.rejected],
        ),
        202,
    )


@get("/track/device-id")
async def device_id(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The device and session id the gateway derives for the caller right now."""
    gateway = _gateway(request)
    received_ms = gateway.clock()
    client = gateway.auth.authenticate(_header_credentials(request))
    context = await _context(request, gateway, client, received_ms)
    project = client.project
    device = derive_device_id(context.user_agent, context.client_ip, project.id, context.salt)
    is_server = context.agent.kind is AgentKind.SERVER  # servers get no sessions (docs/contract.md §7)
    session = "" if is_server else session_id_for(project.id, device, received_ms, gateway.session_timeout_ms)
    return _json(
        wire.DeviceIdResponse(
            deviceId=device,
            sessionId=session,
            message="derived from your user agent and address with today's salt",
        ),
        200,
    )

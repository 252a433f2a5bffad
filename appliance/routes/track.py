"""`POST /track`, `POST /track/batch`, `GET /track/device-id` (docs/contract.md §3).

Each handler walks the event's path: reserve room for its events or answer 503 at once
(`appliance.admission`), authenticate (secret or allowed origin), check disk capacity, read the
body within its limits, then (in a worker thread, one request at a time, `appliance.batch`)
split and decode with the prebuilt msgspec decoders, validate per row and dispatch to rows, and
answer only after the writer has committed them. CORS headers are added around these handlers by `appliance.cors`.
"""

from __future__ import annotations

import logging
from typing import Any

import duckdb
import msgspec
from litestar import Request, Response, get, post

from appliance import wire
from appliance.admission import Ticket
from appliance.auth import Client, Credentials
from appliance.batch import PreparedRows, prepare_rows
from appliance.body import read_body
from appliance.dispatch import Dispatched, RequestContext
from appliance.enrich.client_ip import client_address
from appliance.enrich.useragent import AgentKind, classify
from appliance.envelope import LONE_SURROGATE_ERROR, lone_surrogates, split_batch
from appliance.errors import BadRequest, GatewayError, ServiceUnavailable, StorageFailed
from appliance.gateway import Gateway
from appliance.identity import device_id as derive_device_id
from appliance.identity import session_id_for
from appliance.outcomes import Reason, Rejection
from appliance.properties import PropertyLimits
from appliance.settings import ProjectSettings
from appliance.timestamps import TimeWindow
from storage.write_request import WriteResult
from storage.writer import WriterStopped, is_disk_error

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
        raise _storage_error(exc) from exc
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


def _storage_error(exc: Exception) -> GatewayError:
    """A storage failure as an answer: 503 + Retry-After when waiting can help, else 500."""
    if isinstance(exc, WriterStopped):
        return ServiceUnavailable(f"storage: {exc}; nothing was stored")
    if is_disk_error(exc):
        # The real error is kept: the operator reading the client's log learns what happened.
        return ServiceUnavailable(f"storage: the disk is full or failing ({exc}); nothing was stored",
                                  retry_after_seconds=60)
    return StorageFailed(f"storage: commit failed ({type(exc).__name__}); nothing was stored, resend")


def _window(gateway: Gateway, received_ms: int) -> TimeWindow:
    limits = gateway.settings.limits
    return TimeWindow(received_ms, limits.max_event_age_days, limits.future_tolerance_seconds)


def _count(gateway: Gateway, project: ProjectSettings, **outcomes: int) -> None:
    """Add a request's outcomes to `gateway_events_total` (once per request, not per event)."""
    gateway.metrics.count_events(project.id, outcomes)


async def _store(gateway: Gateway, dispatched: Dispatched, project: ProjectSettings, items: int) -> WriteResult:
    """Commit a request's rows; then its new live rows extend the live sessions (docs/contract.md §5.3).
    When nothing could be stored, the request's `items` valid events count as `internal`."""
    try:
        result = await gateway.writer.write(dispatched.write)
    except (WriterStopped, duckdb.Error) as exc:
        _count(gateway, project, internal=items)
        raise _storage_error(exc) from exc
    events = dispatched.write.events
    gateway.live.record([events[p] for p in dispatched.live_positions if p not in result.duplicates])
    return result


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
    refused = {0: LONE_SURROGATE_ERROR} if lone_surrogates(body) else {}
    prepared = await gateway.prepare(
        prepare_rows, [body], refused, context, _window(gateway, received_ms), _limits(gateway), client.has_secret
    )
    project = client.project
    if prepared.rejected:
        rejection = prepared.rejected[0]
        _count(gateway, project, **{rejection.reason: 1})
        if rejection.reason is Reason.BOT:
            return _json({"bot": {"name": context.agent.browser, "userAgent": context.user_agent}}, 202)
        if rejection.reason is Reason.INTERNAL:
            raise StorageFailed(rejection.error)
        raise BadRequest(rejection.error)
    dispatched = prepared.dispatched
    result = await _store(gateway, dispatched, project, 1)
    if 0 in result.rejected:
        _count(gateway, project, validation=1)
        raise BadRequest(result.rejected[0])
    device, session = dispatched.identity_by_index[0]
    if 0 in result.duplicates:
        stored = result.duplicates[0]
        device, session = stored.device_id, stored.session_id
    _count(gateway, project, duplicate=1 if 0 in result.duplicates else 0, accepted=0 if 0 in result.duplicates else 1)
    return _json(wire.TrackResponse(deviceId=device, sessionId=session), 200)


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
    prepared = await gateway.prepare(
        _prepare_batch, body, gateway.settings.limits.max_batch_events, context, _window(gateway, received_ms),
        _limits(gateway), client.has_secret,
    )
    del body  # not needed while the rows wait for the writer
    ticket.lower_to(prepared.item_count)
    project = client.project
    rejected = prepared.rejected
    try:
        result = await _store(gateway, prepared.dispatched, project, prepared.valid_count)
    except (ServiceUnavailable, StorageFailed):
        _count_rejections(gateway, project, rejected)
        raise
    rejected.extend(Rejection(index, Reason.VALIDATION, message) for index, message in result.rejected.items())

    duplicates = len(result.duplicates)
    accepted = prepared.valid_count - len(result.rejected) - duplicates
    if accepted + duplicates + len(rejected) != prepared.item_count:  # an outcome was lost: never answer that
        raise AssertionError("outcomes do not add up to the events received")
    rejected.sort(key=lambda rejection: rejection.index)
    _count(gateway, project, accepted=accepted, duplicate=duplicates)
    _count_rejections(gateway, project, rejected)
    return _json(
        wire.BatchResponse(
            accepted=accepted,
            duplicates=duplicates,
            rejected=[wire.RejectedRow(r.index, str(r.reason), r.error) for r in rejected],
        ),
        202,
    )


def _count_rejections(gateway: Gateway, project: ProjectSettings, rejected: list[Rejection]) -> None:
    """Count rejected rows by reason; log the first validation error, rate-limited per project."""
    by_reason: dict[str, int] = {}
    first_invalid: Rejection | None = None
    for rejection in rejected:
        by_reason[rejection.reason] = by_reason.get(rejection.reason, 0) + 1
        if first_invalid is None and rejection.reason is Reason.VALIDATION:
            first_invalid = rejection
    _count(gateway, project, **by_reason)
    if first_invalid is not None:
        gateway.refusals.log(logging.WARNING, f"rows {project.id}", "project %s: %d row(s) rejected in a batch, "
                             "e.g. row %d: %s", project.id, by_reason[Reason.VALIDATION], first_invalid.index,
                             first_invalid.error)


def _prepare_batch(
    body: bytes, max_events: int, context: RequestContext, window: TimeWindow, limits: PropertyLimits,
    revenue_allowed: bool,
) -> PreparedRows:
    """Split the envelope and prepare its rows; runs in a worker thread."""
    split = split_batch(body, max_events)
    return prepare_rows(split.items, split.refused, context, window, limits, revenue_allowed)


def _limits(gateway: Gateway) -> PropertyLimits:
    limits = gateway.settings.limits
    return PropertyLimits(
        max_bytes=limits.max_properties_bytes, max_keys=limits.max_property_keys,
        max_array_items=limits.max_array_items, max_string_chars=limits.max_string_chars,
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

"""`POST /track`, `POST /track/batch`, `GET /track/device-id` (docs/contract.md §3).

Each handler walks the event's path: authenticate, check capacity, read the body within its
limits, decode with the prebuilt msgspec decoders, validate per row, dispatch to rows, and
answer only after the writer has committed them.
"""

from __future__ import annotations

import logging
from typing import Any

import duckdb
import msgspec
from litestar import Request, Response, get, post

from appliance import wire
from appliance.auth import authenticate
from appliance.body import read_body
from appliance.dispatch import Dispatched, RequestContext, dispatch
from appliance.enrich.client_ip import client_address
from appliance.enrich.useragent import AgentKind, classify
from appliance.errors import BadRequest, ServiceUnavailable, StorageFailed
from appliance.gateway import Gateway
from appliance.identity import device_id as derive_device_id
from appliance.identity import session_id_for
from appliance.outcomes import Reason, Rejection
from appliance.settings import ProjectSettings
from appliance.timestamps import TimeWindow
from appliance.validate import ValidEvent, validate_item
from storage.rows import WriteResult
from storage.writer import WriterStopped

_JSON = "application/json"


def _json(value: Any, status_code: int) -> Response[bytes]:
    return Response(content=wire.encoder.encode(value), status_code=status_code, media_type=_JSON)


def _gateway(request: Request[Any, Any, Any]) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _authenticate(request: Request[Any, Any, Any], gateway: Gateway) -> ProjectSettings:
    headers = request.headers
    return authenticate(
        gateway.projects, headers.get("openpanel-client-id"), headers.get("openpanel-client-secret")
    )


async def _context(
    request: Request[Any, Any, Any], gateway: Gateway, project: ProjectSettings, received_ms: int
) -> RequestContext:
    headers = request.headers
    user_agent = headers.get("user-agent", "")
    salt, previous_salt = await gateway.salts_for(received_ms)
    return RequestContext(
        project_id=project.id,
        received_ms=received_ms,
        user_agent=user_agent,
        agent=classify(user_agent, project.unknown_agents == "device"),
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


def _bot_rejections(context: RequestContext, events: list[ValidEvent]) -> list[Rejection]:
    """A crawler's events are acknowledged and counted, never stored (docs/contract.md §6.1)."""
    return [Rejection(e.index, Reason.BOT, f"bot: {context.agent.browser or 'crawler'}") for e in events]


async def _accept_body(request: Request[Any, Any, Any], gateway: Gateway) -> bytes:
    problem = gateway.disk.problem()
    if problem is not None:
        raise ServiceUnavailable(f"not accepting events: {problem}", retry_after_seconds=60)
    length = request.headers.get("content-length")
    return await read_body(
        request.stream(),
        content_encoding=request.headers.get("content-encoding"),
        content_length=int(length) if length and length.isdigit() else None,
        max_bytes=gateway.settings.limits.max_body_bytes,
    )


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
    except WriterStopped as exc:
        _count(gateway, project, internal=items)
        raise ServiceUnavailable(f"storage: {exc}; nothing was stored") from exc
    except duckdb.Error as exc:
        _count(gateway, project, internal=items)
        raise StorageFailed(f"storage: commit failed ({type(exc).__name__}); nothing was stored, resend") from exc
    events = dispatched.write.events
    gateway.live.record([events[p] for p in dispatched.live_positions if p not in result.duplicates])
    return result


@post("/track", status_code=200,
      response_description="The event is committed to the gateway's disk (or was before: a duplicate)")
async def track(request: Request[Any, Any, Any]) -> Response[bytes]:
    """One event; `200 {deviceId, sessionId}` once it is stored (or was stored before)."""
    gateway = _gateway(request)
    received_ms = gateway.clock()
    project = _authenticate(request, gateway)
    body = await _accept_body(request, gateway)
    outcome = validate_item(0, body, _window(gateway, received_ms))
    if isinstance(outcome, Rejection):
        _count(gateway, project, validation=1)
        raise BadRequest(outcome.error)
    context = await _context(request, gateway, project, received_ms)
    if context.agent.kind is AgentKind.BOT:
        _count(gateway, project, bot=1)
        bot = {"name": context.agent.browser, "userAgent": context.user_agent}
        return _json({"bot": bot}, 202)
    dispatched = dispatch(context, [outcome])
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
    received_ms = gateway.clock()
    project = _authenticate(request, gateway)
    body = await _accept_body(request, gateway)
    items = _decode_envelope(body, gateway.settings.limits.max_batch_events)

    window = _window(gateway, received_ms)
    valid: list[ValidEvent] = []
    rejected: list[Rejection] = []
    for index, raw in enumerate(items):
        outcome = validate_item(index, raw, window)
        (rejected if isinstance(outcome, Rejection) else valid).append(outcome)  # type: ignore[arg-type]

    context = await _context(request, gateway, project, received_ms)
    if context.agent.kind is AgentKind.BOT:
        rejected.extend(_bot_rejections(context, valid))
        valid = []
    dispatched = dispatch(context, valid)
    try:
        result = await _store(gateway, dispatched, project, len(valid))
    except (ServiceUnavailable, StorageFailed):
        _count_rejections(gateway, project, rejected)
        raise
    rejected.extend(Rejection(index, Reason.VALIDATION, message) for index, message in result.rejected.items())

    duplicates = len(result.duplicates)
    accepted = len(valid) - len(result.rejected) - duplicates
    if accepted + duplicates + len(rejected) != len(items):  # an outcome was lost: never answer that
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


def _decode_envelope(body: bytes, max_events: int) -> list[msgspec.Raw]:
    try:
        envelope = wire.envelope_decoder.decode(body)
    except msgspec.ValidationError as exc:
        text, _, where = str(exc).partition(" - at `$")
        key = where.rstrip("`").lstrip(".") or "body"
        raise BadRequest(f"{key}: {text[:1].lower()}{text[1:]}") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"body: not valid JSON ({exc})") from None
    except UnicodeDecodeError:
        raise BadRequest("body: strings must be valid UTF-8") from None
    except RecursionError:
        raise BadRequest("body: nested too deeply") from None
    count = len(envelope.events)
    if count == 0:
        raise BadRequest("events: must hold at least one event")
    if count > max_events:
        raise BadRequest(f"events: at most {max_events} events per request, got {count}")
    return envelope.events


@get("/track/device-id")
async def device_id(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The device and session id the gateway derives for the caller right now."""
    gateway = _gateway(request)
    received_ms = gateway.clock()
    project = _authenticate(request, gateway)
    context = await _context(request, gateway, project, received_ms)
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

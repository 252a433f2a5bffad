"""From validated events to the rows the writer stores: identity and three-way dispatch (docs/contract.md §5, §7).

Input: the request's context and its `ValidEvent`s. Output: a `WriteRequest`, the device and
session id each item was given, and the live rows to record once committed. Every event takes
exactly one path:

- server (a server user agent): no session and no device (`device_id = ''`, as OpenPanel stores
  it), unless its profile is in an active live session, whose ids and context it then borrows;
- historical (older than the session timeout): the deterministic bucket session of its own time;
  live state is neither read nor written;
- live: the device's active live session if one existed before this request (the current or the
  previous day's salt), else the bucket session; recorded as live activity after the commit.

Each distinct address of a request is hashed and located once, each device's time bucket given
its session id once (`_RequestIds`), each distinct page and referrer parsed once
(`RequestEnrichment`).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field

import msgspec

from appliance import wire
from appliance.enrich.event import RequestEnrichment
from appliance.enrich.geo import GeoLocator, Location
from appliance.enrich.referrer import ReferrerTable
from appliance.enrich.useragent import Agent, AgentKind
from appliance.identity import bucket_session_id, device_id, event_id_text, session_bucket
from appliance.live_sessions import LiveSession, LiveSessions
from appliance.timestamps import parse_timestamp_ms
from appliance.validate import ValidEvent
from storage.write_request import EventRow, GroupUpsert, ProfileChange, ReplayChunk, WriteRequest

_PROPERTIES_ENCODER = msgspec.json.Encoder(order="sorted")
# Stored on identify as profile properties, as OpenPanel does.
_PROFILE_CONTEXT = ("country", "city", "region", "os", "os_version", "browser", "browser_version",
                    "device", "brand", "model")


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What all items of one request share (docs/contract.md §3.4)."""

    project_id: str
    received_ms: int
    user_agent: str
    agent: Agent
    client_ip: str
    salt: str
    previous_salt: str | None
    session_timeout_ms: int
    geo: GeoLocator
    referrers: ReferrerTable
    live: LiveSessions
    sdk_name: str = ""
    sdk_version: str = ""


@dataclass(slots=True)
class Dispatched:
    """The rows of one request, and where each came from."""

    write: WriteRequest = field(default_factory=WriteRequest)
    identity_by_index: dict[int, tuple[str, str]] = field(default_factory=dict)
    # The live rows, and their positions among the request's events (kept as rows when the
    # events become columns, `appliance.batch`).
    live_rows: list[EventRow] = field(default_factory=list)
    live_positions: list[int] = field(default_factory=list)

    def live(self, duplicates: Container[int]) -> list[EventRow]:
        """The live rows that are not duplicates (by position)."""
        return [row for position, row in zip(self.live_positions, self.live_rows, strict=True)
                if position not in duplicates]


def dispatch(context: RequestContext, events: list[ValidEvent]) -> Dispatched:
    """Turn a request's valid events into rows to store."""
    out = Dispatched()
    ids = _RequestIds(context)
    enrichment = RequestEnrichment(context.agent, context.referrers)
    for event in events:
        ip = event.ip_override or context.client_ip
        device, session, live = _identity(context, ids, event, ip)
        out.identity_by_index[event.index] = (device, session.session_id if session else "")
        match event.item:
            case wire.TrackItem():
                row = _track_row(context, enrichment, event, device, ids.location(ip), session, live)
                if live:
                    out.live_positions.append(len(out.write.events))
                    out.live_rows.append(row)
                out.write.events.append(row)
            case wire.IdentifyItem(payload=p):
                out.write.profile_changes.append(ProfileChange(
                    index=event.index, kind="identify", project_id=context.project_id, id=str(event.profile_id),
                    seen_at=event.event_ms, received_at=context.received_ms, first_name=p.firstName or "",
                    last_name=p.lastName or "",
                    email=p.email or "", avatar=p.avatar or "",
                    properties={**_profile_context(context, ids.location(ip)), **event.flat_properties}))
            case wire.IncrementItem(payload=p) | wire.DecrementItem(payload=p):
                out.write.profile_changes.append(ProfileChange(
                    index=event.index, kind=event.kind, project_id=context.project_id,  # type: ignore[arg-type]
                    id=str(event.profile_id), seen_at=event.event_ms, received_at=context.received_ms,
                    property=p.property, amount=float(p.value)))
            case wire.AssignGroupItem(payload=p):
                out.write.profile_changes.append(ProfileChange(
                    index=event.index, kind="assign_groups", project_id=context.project_id,
                    id=event.profile_id or device, seen_at=event.event_ms, received_at=context.received_ms,
                    groups=list(p.groupIds)))
            case wire.GroupItem(payload=p):
                out.write.groups.append(GroupUpsert(project_id=context.project_id, id=p.id, type=p.type, name=p.name,
                                                    properties=event.flat_properties, seen_at=event.event_ms))
            case wire.ReplayItem(payload=p):
                out.write.replays.append(ReplayChunk(
                    project_id=context.project_id, session_id=session.session_id if session else "",
                    chunk_index=p.chunk_index, started_at=parse_timestamp_ms(p.started_at) or event.event_ms,
                    ended_at=parse_timestamp_ms(p.ended_at) or event.event_ms, events_count=p.events_count,
                    is_full_snapshot=p.is_full_snapshot, payload=p.payload, received_at=context.received_ms))
    return out


class _Session(msgspec.Struct, frozen=True):  # one per event: a struct is cheaper than a frozen dataclass
    session_id: str
    borrowed_from: LiveSession | None = None


def _identity(context: RequestContext, ids: _RequestIds, event: ValidEvent,
              ip: str) -> tuple[str, _Session | None, bool]:
    """(device id, session or None, whether the event is live) for one event."""
    device = event.device_id_override or ids.device_id(ip, context.salt)
    project, event_ms = context.project_id, event.event_ms
    if context.agent.kind is AgentKind.SERVER:
        profile_session = context.live.for_profile(project, event.profile_id, event_ms) if event.profile_id else None
        if profile_session is None:
            return device, None, False
        return profile_session.device_id, _Session(profile_session.session_id, profile_session), False
    if context.received_ms - event_ms > context.session_timeout_ms:  # historical
        return device, _Session(ids.bucket_session_id(device, event_ms)), False
    live = context.live.for_device(project, device, event_ms)
    if live is None and context.previous_salt and not event.device_id_override:
        # The daily salt rotated during a visit: the session continues under yesterday's device id.
        live = context.live.for_device(project, ids.device_id(ip, context.previous_salt), event_ms)
    if live is not None:
        return live.device_id, _Session(live.session_id), True
    return device, _Session(ids.bucket_session_id(device, event_ms)), True


class _RequestIds:
    """What one request works out once: per address its device id and location (the user agent
    is shared, only the address varies), per device and time bucket its session id (a device's
    events mostly fall in a few buckets)."""

    def __init__(self, context: RequestContext) -> None:
        self._context = context
        self._devices: dict[tuple[str, str], str] = {}
        self._locations: dict[str, Location] = {}
        self._sessions: dict[tuple[str, int], str] = {}

    def bucket_session_id(self, device: str, event_ms: int) -> str:
        """The deterministic session id of `device` at `event_ms` (`identity.session_id_for`)."""
        context = self._context
        bucket = session_bucket(event_ms, context.session_timeout_ms)
        session = self._sessions.get((device, bucket))
        if session is None:
            session = self._sessions[(device, bucket)] = bucket_session_id(context.project_id, device, bucket)
        return session

    def device_id(self, ip: str, salt: str) -> str:
        device = self._devices.get((ip, salt))
        if device is None:
            context = self._context
            device = self._devices[(ip, salt)] = device_id(context.user_agent, ip, context.project_id, salt)
        return device

    def location(self, ip: str) -> Location:
        where = self._locations.get(ip)
        if where is None:
            where = self._locations[ip] = self._context.geo.locate(ip)
        return where


def _track_row(context: RequestContext, enrichment: RequestEnrichment, event: ValidEvent, device: str,
               where: Location, session: _Session | None, live: bool) -> EventRow:
    assert isinstance(event.item, wire.TrackItem)
    payload = event.item.payload
    columns = enrichment.columns(event.properties, event.flat_properties, where)
    row = EventRow(
        id=event_id_text(context.project_id, event.insert_id),
        id_from_client=event.insert_id is not None,
        name=payload.name,
        project_id=context.project_id,
        device_id=device,
        profile_id=event.profile_id or device,
        session_id=session.session_id if session else "",
        created_at=event.event_ms,
        received_at=context.received_ms,
        properties=_PROPERTIES_ENCODER.encode(columns.properties).decode(),
        groups=payload.groups or [],
        sdk_name=context.sdk_name,
        sdk_version=context.sdk_version,
        path=columns.path,
        origin=columns.origin,
        referrer=columns.referrer,
        referrer_name=columns.referrer_name,
        referrer_type=columns.referrer_type,
        revenue=event.revenue,
        country=columns.country,
        city=columns.city,
        region=columns.region,
        longitude=columns.longitude,
        latitude=columns.latitude,
        os=columns.os,
        os_version=columns.os_version,
        browser=columns.browser,
        browser_version=columns.browser_version,
        device=columns.device,
        brand=columns.brand,
        model=columns.model,
        session_is_live=live,
    )
    if context.agent.kind is AgentKind.SERVER:
        row = _server_row(row, event, session.borrowed_from if session is not None else None)
    return row


def _server_row(row: EventRow, event: ValidEvent, borrowed: LiveSession | None) -> EventRow:
    """A server event's ids and context, by OpenPanel's rule (`events.incoming-event.ts`).

    It has no device of its own (`device_id = ''`) and no referrer; its profile is only the one it
    names. Riding a profile's live session, it takes that session's device, referrer, geo, agent
    and exit page, without extending the session.
    """
    columns: dict[str, object] = {"device_id": "", "profile_id": str(event.profile_id or ""), "referrer": "",
                                  "referrer_name": "", "referrer_type": "", "extends_session": False}
    if borrowed is not None:
        columns |= borrowed.borrowed | {"device_id": borrowed.device_id}
        exit_path, exit_origin = borrowed.exit
        if exit_path:
            columns |= {"path": exit_path, "origin": exit_origin}
    return msgspec.structs.replace(row, **columns)


def _profile_context(context: RequestContext, where: Location) -> dict[str, str]:
    agent = context.agent
    values = {"country": where.country, "city": where.city, "region": where.region, "os": agent.os,
              "os_version": agent.os_version, "browser": agent.browser, "browser_version": agent.browser_version,
              "device": agent.device, "brand": agent.brand, "model": agent.model}
    return {name: values[name] for name in _PROFILE_CONTEXT if values[name]}

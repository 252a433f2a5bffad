"""From validated events to the rows the writer stores (SPEC §5, §7).

Input: the request's context and its `ValidEvent`s. Output: a `WriteRequest` plus, for each
event row, its position in the request, and the rows answered without storing (types this
build does not store yet). Identity is derived here: device id from user agent, address,
project and the daily salt; session id from the event's own time (the deterministic bucket of
§5.2; live sessions that roll across bucket edges come with the sessions issue). Events from a
server agent get no session. Each distinct address of a request is hashed and located once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from appliance import wire
from appliance.enrich.event import enrich
from appliance.enrich.geo import GeoLocator, Location
from appliance.enrich.referrer import ReferrerTable
from appliance.enrich.useragent import Agent, AgentKind
from appliance.identity import device_id, event_id, session_id_for
from appliance.outcomes import Reason, Rejection
from appliance.validate import ValidEvent
from storage.rows import EventRow, ProfileUpsert, WriteRequest

_PROPERTIES_ENCODER = msgspec.json.Encoder(order="sorted")


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What all items of one request share (SPEC §3.4)."""

    project_id: str
    received_ms: int
    user_agent: str
    agent: Agent
    client_ip: str
    salt: str
    session_timeout_ms: int
    geo: GeoLocator
    referrers: ReferrerTable
    sdk_name: str = ""
    sdk_version: str = ""


@dataclass(slots=True)
class Dispatched:
    """The rows of one request, and where each came from."""

    write: WriteRequest = field(default_factory=WriteRequest)
    event_indices: list[int] = field(default_factory=list)  # item index of each event row
    identity_by_index: dict[int, tuple[str, str]] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)


def dispatch(context: RequestContext, events: list[ValidEvent]) -> Dispatched:
    """Turn a request's valid events into rows to store."""
    out = Dispatched()
    addresses = _Addresses(context)
    for event in events:
        ip = event.ip_override or context.client_ip
        device = event.device_id_override or addresses.device_id(ip)
        match event.item:
            case wire.TrackItem():
                row = _track_row(context, event, device, addresses.location(ip))
                out.write.events.append(row)
                out.event_indices.append(event.index)
                out.identity_by_index[event.index] = (row.device_id, row.session_id)
            case wire.IdentifyItem(payload=payload):
                out.write.profiles.append(_profile_upsert(context, event, payload))
                out.identity_by_index[event.index] = (device, _session_id(context, event, device))
            case _:
                out.rejections.append(
                    Rejection(event.index, Reason.INTERNAL, f"{event.kind}: not supported yet")
                )
    return out


class _Addresses:
    """Per-address work of one request: the user agent is shared, only the address varies."""

    def __init__(self, context: RequestContext) -> None:
        self._context = context
        self._devices: dict[str, str] = {}
        self._locations: dict[str, Location] = {}

    def device_id(self, ip: str) -> str:
        device = self._devices.get(ip)
        if device is None:
            context = self._context
            device = device_id(context.user_agent, ip, context.project_id, context.salt)
            self._devices[ip] = device
        return device

    def location(self, ip: str) -> Location:
        where = self._locations.get(ip)
        if where is None:
            where = self._locations[ip] = self._context.geo.locate(ip)
        return where


def _session_id(context: RequestContext, event: ValidEvent, device: str) -> str:
    if context.agent.kind is AgentKind.SERVER:
        return ""
    return session_id_for(context.project_id, device, event.event_ms, context.session_timeout_ms)


def _track_row(context: RequestContext, event: ValidEvent, device: str, where: Location) -> EventRow:
    assert isinstance(event.item, wire.TrackItem)
    payload = event.item.payload
    columns = enrich(event.properties, dict(event.flat_properties), context.agent, where, context.referrers)
    return EventRow(
        id=str(event_id(context.project_id, event.insert_id)),
        id_from_client=event.insert_id is not None,
        name=payload.name,
        project_id=context.project_id,
        device_id=device,
        profile_id=event.profile_id or device,
        session_id=_session_id(context, event, device),
        created_at=event.event_ms,
        received_at=context.received_ms,
        properties=_encode(columns.properties),
        groups=payload.groups,
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
    )


def _profile_upsert(context: RequestContext, event: ValidEvent, payload: wire.IdentifyPayload) -> ProfileUpsert:
    assert event.profile_id is not None  # required for identify, checked by validation
    return ProfileUpsert(
        project_id=context.project_id,
        id=event.profile_id,
        first_name=payload.firstName or "",
        last_name=payload.lastName or "",
        email=payload.email or "",
        avatar=payload.avatar or "",
        properties=event.flat_properties,
        seen_at=event.event_ms,
    )


def _encode(properties: dict[str, str]) -> str:
    return _PROPERTIES_ENCODER.encode(properties).decode()

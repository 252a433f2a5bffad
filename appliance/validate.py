"""Per-row validation (docs/contract.md §3.2, §4): one raw item in, a `ValidEvent` or a `Rejection` out.

Input: one item of a request as raw JSON bytes, plus the request's time window. Output: the
decoded item with its event time and the special properties read out, or a rejection whose
message names the field (`payload.name: must not be empty`). Nothing here touches I/O, so a
bad row can never leave anything behind.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec

from appliance import wire
from appliance.outcomes import Reason, Rejection
from appliance.properties import MAX_PROPERTY_DEPTH, PropertiesTooDeep, flatten_properties
from appliance.timestamps import TimeWindow, TooOld, event_time_ms, parse_timestamp_ms

MAX_NAME_CHARS = 80
MAX_CLIENT_ID_CHARS = 64
MAX_REPLAY_PAYLOAD_BYTES = 2 * 1024 * 1024
RESERVED_EVENT_NAMES = frozenset({"session_start", "session_end"})

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class RowInvalid(Exception):
    """One row breaks a rule; the message is `<path>: <what is wrong>`."""


@dataclass(frozen=True, slots=True)
class ValidEvent:
    """A row that passed validation, with what later stages need read out of it."""

    index: int
    item: wire.EventItem
    event_ms: int
    profile_id: str | None
    properties: dict[str, Any]
    flat_properties: dict[str, str]  # what is stored: flat, stringified, special keys consumed
    ip_override: str | None
    device_id_override: str | None
    insert_id: str | None
    revenue: int

    @property
    def kind(self) -> str:
        return self.item.__struct_config__.tag  # type: ignore[return-value]


def validate_item(index: int, raw: bytes | msgspec.Raw, window: TimeWindow) -> ValidEvent | Rejection:
    """Decode and check one item; every failure becomes a `validation` rejection."""
    try:
        return _validate(index, raw, window)
    except RowInvalid as exc:
        return Rejection(index, Reason.VALIDATION, str(exc))


def _validate(index: int, raw: bytes | msgspec.Raw, window: TimeWindow) -> ValidEvent:
    item = _decode(raw)
    profile_id = _check_payload(item)
    properties = item.payload.properties if not isinstance(item, wire.AliasItem) else {}
    try:
        flat_properties = flatten_properties(properties)
    except PropertiesTooDeep as exc:
        raise RowInvalid(f"payload.properties: {exc}") from None
    try:
        event_ms = event_time_ms(properties.get("__timestamp"), window)
    except TooOld as exc:
        raise RowInvalid(f"payload.properties.__timestamp: {exc}") from None
    return ValidEvent(
        index=index,
        item=item,
        event_ms=event_ms,
        profile_id=profile_id,
        properties=properties,
        flat_properties=flat_properties,
        ip_override=_ip_override(properties),
        device_id_override=_device_id_override(properties),
        insert_id=_insert_id(properties),
        revenue=_revenue(item, properties),
    )


def _decode(raw: bytes | msgspec.Raw) -> wire.EventItem:
    try:
        item: wire.EventItem = wire.item_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise RowInvalid(_field_message(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise RowInvalid(f"item: not valid JSON ({exc})") from None
    except UnicodeDecodeError:
        raise RowInvalid("item: strings must be valid UTF-8") from None
    except RecursionError:
        raise RowInvalid(f"payload.properties: nested deeper than {MAX_PROPERTY_DEPTH} levels") from None
    return item


def _field_message(message: str) -> str:
    # msgspec: "Expected `str`, got `int` - at `$.payload.name`" → "payload.name: expected ..."
    text, sep, where = message.partition(" - at `$")
    text = text[:1].lower() + text[1:]
    if text.startswith("invalid value") and where.startswith(".type"):
        text = f"unknown event type {text.removeprefix('invalid value ')}"
    key = where.rstrip("`").lstrip(".") if sep else ""
    return f"{key or 'item'}: {text}"


def _check_payload(item: wire.EventItem) -> str | None:
    """Type-specific rules; returns the row's profile id (None when anonymous)."""
    match item:
        case wire.TrackItem(payload=p):
            _check_name(p.name)
            _check_strings("payload.groups", p.groups)
            return _profile_id(p.profileId, required=False)
        case wire.IdentifyItem(payload=p):
            if p.email and not _EMAIL.match(p.email):
                raise RowInvalid("payload.email: not a valid email address")
            if p.avatar and not _is_url(p.avatar):
                raise RowInvalid("payload.avatar: must be an http(s) URL")
            return _profile_id(p.profileId, required=True)
        case wire.IncrementItem(payload=p) | wire.DecrementItem(payload=p):
            if not p.property or any(not part for part in p.property.split(".")):
                raise RowInvalid("payload.property: must be a dotted path like `stats.visits`")
            if isinstance(p.value, bool) or not math.isfinite(p.value) or p.value <= 0:
                raise RowInvalid("payload.value: must be a positive number")
            return _profile_id(p.profileId, required=True)
        case wire.GroupItem(payload=p):
            for field in ("id", "type", "name"):
                if not getattr(p, field).strip():
                    raise RowInvalid(f"payload.{field}: must not be empty")
            return None
        case wire.AssignGroupItem(payload=p):
            if not p.groupIds:
                raise RowInvalid("payload.groupIds: must hold at least one group id")
            _check_strings("payload.groupIds", p.groupIds)
            return _profile_id(p.profileId, required=False)
        case wire.ReplayItem(payload=p):
            _check_replay(p)
            return None
        case wire.AliasItem():
            raise RowInvalid("type: alias is not supported")
    raise AssertionError(f"unhandled item {type(item).__name__}")  # pragma: no cover


def _check_name(name: str) -> None:
    if not name.strip():
        raise RowInvalid("payload.name: must not be empty")
    if len(name) > MAX_NAME_CHARS:
        raise RowInvalid(f"payload.name: must be at most {MAX_NAME_CHARS} characters, got {len(name)}")
    if "\r" in name or "\n" in name:
        raise RowInvalid("payload.name: must not contain line breaks")
    if name in RESERVED_EVENT_NAMES:
        raise RowInvalid(f"payload.name: {name} is reserved for the gateway")


def _check_strings(path: str, values: list[str]) -> None:
    for position, value in enumerate(values):
        if not value.strip():
            raise RowInvalid(f"{path}[{position}]: must not be empty")


def _check_replay(p: wire.ReplayPayload) -> None:
    if not 0 <= p.chunk_index <= 65535:
        raise RowInvalid("payload.chunk_index: must be between 0 and 65535")
    if p.events_count < 1:
        raise RowInvalid("payload.events_count: must be at least 1")
    for field in ("started_at", "ended_at"):
        if parse_timestamp_ms(getattr(p, field)) is None:
            raise RowInvalid(f"payload.{field}: must be an ISO-8601 time")
    if len(p.payload.encode()) > MAX_REPLAY_PAYLOAD_BYTES:
        raise RowInvalid("payload.payload: must be at most 2 MiB")


def _profile_id(value: wire.ProfileIdValue | None, *, required: bool) -> str | None:
    if isinstance(value, bool):
        raise RowInvalid("payload.profileId: must be a string or a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RowInvalid("payload.profileId: must be a finite number")
        value = int(value) if value.is_integer() else value
    text = str(value).strip() if value is not None else ""
    if required and not text:
        raise RowInvalid("payload.profileId: is required")
    return text or None


def _is_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _ip_override(properties: dict[str, Any]) -> str | None:
    value = properties.get("__ip")
    if value is None or value == "":
        return None
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise RowInvalid(f"payload.properties.__ip: {str(value)[:64]!r} is not an IP address") from None


def _device_id_override(properties: dict[str, Any]) -> str | None:
    value = properties.get("__deviceId")
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if 0 < len(value) <= MAX_CLIENT_ID_CHARS else None


def _insert_id(properties: dict[str, Any]) -> str | None:
    if "__insertId" not in properties:
        return None
    value = properties["__insertId"]
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_CLIENT_ID_CHARS:
        raise RowInvalid(f"payload.properties.__insertId: must be a string of 1-{MAX_CLIENT_ID_CHARS} characters")
    return value


def _revenue(item: wire.EventItem, properties: dict[str, Any]) -> int:
    if "__revenue" not in properties:
        return 0
    if not isinstance(item, wire.TrackItem) or item.payload.name != "revenue":
        raise RowInvalid("payload.properties.__revenue: only allowed on events named `revenue`")
    value = properties["__revenue"]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RowInvalid("payload.properties.__revenue: must be a non-negative integer")
    if value >= 2**64:
        raise RowInvalid("payload.properties.__revenue: too large")
    return value

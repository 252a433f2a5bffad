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
from typing import Any
from urllib.parse import urlsplit

import msgspec

from appliance import wire
from appliance.outcomes import Reason, Rejection
from appliance.properties import (
    MAX_PROPERTY_DEPTH,
    FlattenMemo,
    PropertiesInvalid,
    PropertyLimits,
    decode_and_flatten,
)
from appliance.timestamps import TimeWindow, TooOld, event_time_ms, parse_timestamp_ms

MAX_NAME_CHARS = 80
MAX_CLIENT_ID_CHARS = 64
MAX_REPLAY_PAYLOAD_BYTES = 2 * 1024 * 1024
# The largest integer a JavaScript SDK sends exactly (Number.MAX_SAFE_INTEGER); larger amounts
# arrive rounded anyway, and sums of them could pass the stored UBIGINT.
MAX_REVENUE = 2**53 - 1
RESERVED_EVENT_NAMES = frozenset({"session_start", "session_end"})
# Items above this size have their list fields sized before they are decoded (`_check_shape`);
# smaller ones cannot hold enough items to matter.
_SHAPE_CHECK_BYTES = 65536
_DEFAULT_LIMITS = PropertyLimits()

# Items whose string lengths are not checked field by field: an alias is refused anyway, a
# replay's payload has its own bound. A tuple made once, not a union made per row.
_UNCHECKED_LENGTHS = (wire.AliasItem, wire.ReplayItem)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class RowInvalid(Exception):
    """One row breaks a rule; the message is `<path>: <what is wrong>`."""


class ValidEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A row that passed validation, with what later stages need read out of it.

    A msgspec struct, not a frozen dataclass: one is made per event, ten times faster."""

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


def validate_item(
    index: int, raw: bytes | msgspec.Raw, window: TimeWindow, limits: PropertyLimits = _DEFAULT_LIMITS, *,
    revenue_allowed: bool = True, memo: FlattenMemo | None = None,
) -> ValidEvent | Rejection:
    """Decode and check one item; every failure becomes a `validation` rejection.

    `revenue_allowed` is False for clients without the secret (browser pages): revenue sent
    from a page could be forged by anyone, so OpenPanel refuses `__revenue` from them. `memo`
    is shared by the items of one request (`appliance.properties.FlattenMemo`).
    """
    try:
        return _validate(index, raw, window, limits, revenue_allowed, memo)
    except RowInvalid as exc:
        return Rejection(index, Reason.VALIDATION, str(exc))


def _validate(index: int, raw: bytes | msgspec.Raw, window: TimeWindow, limits: PropertyLimits,
              revenue_allowed: bool, memo: FlattenMemo | None) -> ValidEvent:
    if len(raw) > _SHAPE_CHECK_BYTES:
        _check_shape(raw, limits)
    item = _decode(raw)
    profile_id = _check_payload(item, limits)
    try:
        properties, flat_properties = (
            decode_and_flatten(item.payload.properties, limits, memo) if not isinstance(item, wire.AliasItem)
            else ({}, {})
        )
    except PropertiesInvalid as exc:
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
        revenue=_revenue(item, properties, revenue_allowed),
    )


def _check_shape(raw: bytes | msgspec.Raw, limits: PropertyLimits) -> None:
    """Refuse list fields too long to decode, reading them as raw JSON (no objects made)."""
    try:
        shape = wire.item_shape_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return  # the full decode names the problem
    for field in ("groups", "groupIds"):
        # Items <= commas + 1, whatever the strings hold: a cheap bound that is exact for the
        # short ids these lists carry.
        if bytes(getattr(shape.payload, field)).count(b",") >= limits.max_array_items:
            raise RowInvalid(f"payload.{field}: more than {limits.max_array_items} items")


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


def _check_payload(item: wire.EventItem, limits: PropertyLimits) -> str | None:
    """Type-specific rules; returns the row's profile id (None when anonymous)."""
    if not isinstance(item, _UNCHECKED_LENGTHS):
        _check_lengths(item.payload, limits)
    match item:
        case wire.TrackItem(payload=p):
            _check_name(p.name)
            _check_strings("payload.groups", p.groups or [])
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


def _check_lengths(payload: Any, limits: PropertyLimits) -> None:
    """Every string field within `max_string_chars`, every list within `max_array_items`."""
    for field in payload.__struct_fields__:
        value = getattr(payload, field)
        if isinstance(value, str) and len(value) > limits.max_string_chars:
            raise RowInvalid(f"payload.{field}: longer than {limits.max_string_chars} characters")
        if isinstance(value, list):
            if len(value) > limits.max_array_items:
                raise RowInvalid(f"payload.{field}: more than {limits.max_array_items} items")
            for position, entry in enumerate(value):
                if len(entry) > limits.max_string_chars:
                    raise RowInvalid(f"payload.{field}[{position}]: longer than {limits.max_string_chars} characters")


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
    if not 1 <= p.events_count <= 65535:  # OpenPanel's column is UInt16
        raise RowInvalid("payload.events_count: must be between 1 and 65535")
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


def _revenue(item: wire.EventItem, properties: dict[str, Any], revenue_allowed: bool) -> int:
    """The event's revenue (OpenPanel's track schema): only `revenue` events carry one.

    Elsewhere `__revenue` is ignored (consumed, not stored), as OpenPanel ignores it, rather than
    losing the whole event; a null one counts as absent.
    """
    value = properties.get("__revenue")
    if value is None:
        return 0
    if not revenue_allowed:
        raise RowInvalid(
            "payload.properties.__revenue: revenue needs the client secret (openpanel-client-secret); "
            "a browser client without it cannot send revenue"
        )
    if not isinstance(item, wire.TrackItem) or item.payload.name != "revenue":
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RowInvalid("payload.properties.__revenue: must be a non-negative integer")
    if value > MAX_REVENUE:
        raise RowInvalid(f"payload.properties.__revenue: at most {MAX_REVENUE}")
    return value

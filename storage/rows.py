"""The rows a request hands to the writer: what will be stored, already fully computed.

Built on the request path (`appliance.dispatch`), consumed by `storage.writer`. Field names are
the column names of `storage.schema`; times are epoch milliseconds (UTC).
"""

from __future__ import annotations

import msgspec


class EventRow(msgspec.Struct, kw_only=True):
    id: str
    # True when `id` derives from the client's `__insertId`: only such ids can be duplicates;
    # random ids are new by construction and skip the duplicate lookup.
    id_from_client: bool
    name: str
    project_id: str
    device_id: str
    profile_id: str
    session_id: str
    created_at: int
    received_at: int
    properties: str = "{}"
    groups: list[str] = []
    sdk_name: str = ""
    sdk_version: str = ""
    path: str = ""
    origin: str = ""
    referrer: str = ""
    referrer_name: str = ""
    referrer_type: str = ""
    revenue: int = 0
    duration: int = 0
    country: str = ""
    city: str = ""
    region: str = ""
    longitude: float | None = None
    latitude: float | None = None
    os: str = ""
    os_version: str = ""
    browser: str = ""
    browser_version: str = ""
    device: str = ""
    brand: str = ""
    model: str = ""
    imported_at: int | None = None


class ProfileUpsert(msgspec.Struct, kw_only=True):
    """An `identify`: non-empty fields overwrite, properties merge, `created_at` is kept."""

    project_id: str
    id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    avatar: str = ""
    properties: dict[str, str] = {}
    seen_at: int


class StoredIds(msgspec.Struct, frozen=True):
    """The ids an already-stored event was stored under (answered for duplicates)."""

    device_id: str
    session_id: str


class WriteRequest(msgspec.Struct, kw_only=True):
    """Everything one HTTP request stores; committed together or not at all."""

    events: list[EventRow] = []
    profiles: list[ProfileUpsert] = []


class WriteResult(msgspec.Struct, kw_only=True):
    """Which of a request's event rows were duplicates, by position in `WriteRequest.events`."""

    duplicates: dict[int, StoredIds]

"""The rows a request hands to the writer: what will be stored, already fully computed.

Built on the request path (`appliance.dispatch`), consumed by `storage.writer`. Field names are
the column names of `storage.schema`; times are epoch milliseconds (UTC).
"""

from __future__ import annotations

from typing import Literal

import msgspec
import pyarrow as pa


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
    # Not a column: whether the row's session is a live one (docs/contract.md §5.3), kept on the session row.
    session_is_live: bool = False
    # Not a column: whether the row counts in its session's aggregate. A server event riding a
    # live session does not: OpenPanel stores it without passing it through its session buffer.
    extends_session: bool = True


ProfileChangeKind = Literal["identify", "increment", "decrement", "assign_groups"]


class ProfileChange(msgspec.Struct, kw_only=True):
    """One change to a profile; a request's changes apply in item order (docs/contract.md §7).

    identify: non-empty fields overwrite, properties merge, `created_at` is kept.
    increment/decrement: `property` (a flat key) changes by `amount`; the profile must exist.
    assign_groups: `groups` are added to the profile, which is created when missing.
    """

    index: int
    kind: ProfileChangeKind
    project_id: str
    id: str
    seen_at: int
    # When the gateway received it: the profile's `last_seen_at` is the time of the write, as in
    # OpenPanel's `upsertProfile`, not the event's own time.
    received_at: int = 0
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    avatar: str = ""
    properties: dict[str, str] = {}
    property: str = ""
    amount: float = 0
    groups: list[str] = []


class GroupUpsert(msgspec.Struct, kw_only=True):
    project_id: str
    id: str
    type: str
    name: str
    properties: dict[str, str]
    seen_at: int


class ReplayChunk(msgspec.Struct, kw_only=True):
    project_id: str
    session_id: str
    chunk_index: int
    started_at: int
    ended_at: int
    events_count: int
    is_full_snapshot: bool
    payload: str
    received_at: int


class StoredIds(msgspec.Struct, frozen=True):
    """The ids an already-stored event was stored under (answered for duplicates)."""

    device_id: str
    session_id: str


class WriteRequest(msgspec.Struct, kw_only=True):
    """Everything one HTTP request stores; committed together or not at all.

    Its events come as rows (`events`) or, from the request path, as the same rows in columns
    (`event_columns`, `storage.session_aggregates.event_batch`), built in the request's worker
    thread so the writer does no Python per row; positions are the same either way.
    """

    events: list[EventRow] = []
    event_columns: pa.Table | None = None
    profile_changes: list[ProfileChange] = []
    groups: list[GroupUpsert] = []
    replays: list[ReplayChunk] = []

    @property
    def event_count(self) -> int:
        """How many events the request stores (or finds duplicate)."""
        return len(self.events) if self.event_columns is None else self.event_columns.num_rows


class WriteResult(msgspec.Struct, kw_only=True):
    """Per request: duplicate event rows (by position among its events) and rows refused on stored
    state (by item index, with the `validation` message, e.g. increment of an unknown profile)."""

    duplicates: dict[int, StoredIds]
    rejected: dict[int, str] = {}

"""Session rows and session events, computed from stored event rows (docs/contract.md §7).

Input: the event rows a transaction stores, or the open sessions the closer found. Output: one
partial aggregate per session (merged into the `sessions` table by the writer's upsert), the
`session_start` row of a session seen for the first time, and `session_end` rows. Pure: the
writer decides which sessions are new, inside the transaction that stores their events.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from storage.schema import GEO_AND_AGENT_NAMES
from storage.write_request import EventRow

SESSION_EVENTS = frozenset({"session_start", "session_end"})
SCREEN_VIEW = "screen_view"
SESSION_START_LEAD_MS = 100
SESSION_END_LAG_MS = 1000
_UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
# Fixed forever, like the insert-id namespace: session events get the same id on every resend.
_SESSION_EVENT_NAMESPACE = uuid.UUID("2b0a1c4e-6f3d-5a7b-8c9d-1e2f3a4b5c6d")
_DECODE_PROPERTIES = msgspec.json.Decoder(dict[str, str])


def session_event_id(name: str, project_id: str, session_id: str) -> str:
    """The one id a session's `session_start` (or `session_end`) can ever have."""
    return str(uuid.uuid5(_SESSION_EVENT_NAMESPACE, f"{name}:{project_id}:{session_id}"))


def session_deltas(rows: list[EventRow]) -> dict[str, dict[str, Any]]:
    """Per session id, the aggregate of `rows` in the `sessions` table's columns (without seq)."""
    grouped: dict[str, list[EventRow]] = {}
    for row in rows:
        if row.session_id and row.extends_session and row.name not in SESSION_EVENTS:
            grouped.setdefault(row.session_id, []).append(row)
    return {session_id: _aggregate(members) for session_id, members in grouped.items()}


def _aggregate(rows: list[EventRow]) -> dict[str, Any]:
    first = min(rows, key=lambda r: r.created_at)
    last = max(rows, key=lambda r: r.created_at)
    identified = [r.profile_id for r in rows if r.profile_id != r.device_id]
    query = _DECODE_PROPERTIES.decode(first.properties)
    # OpenPanel's session buffer (`session-buffer.ts`): a screen view with a path counts as a
    # screen view only, every other event as an event; entry and exit are the first and last
    # pages, an event without a path leaving them as they are.
    screen_views = sum(1 for r in rows if r.name == SCREEN_VIEW and r.path)
    paged = [r for r in rows if r.path]
    entry = min(paged, key=lambda r: r.created_at) if paged else first
    exit_page = max(paged, key=lambda r: r.created_at) if paged else last
    return {
        "id": first.session_id,
        "project_id": first.project_id,
        "device_id": first.device_id,
        "profile_id": identified[-1] if identified else first.profile_id,
        "created_at": first.created_at,
        "ended_at": last.created_at,
        "duration": last.created_at - first.created_at,
        "event_count": len(rows) - screen_views,
        "screen_view_count": screen_views,
        "is_bounce": screen_views <= 1,
        "entry_path": entry.path,
        "entry_origin": entry.origin,
        "exit_path": exit_page.path,
        "exit_origin": exit_page.origin,
        "referrer": first.referrer,
        "referrer_name": first.referrer_name,
        "referrer_type": first.referrer_type,
        **{name: query.get(f"__query.{name}", "") for name in _UTM},
        **{name: getattr(first, name) for name in GEO_AND_AGENT_NAMES},
        "revenue": min(sum(r.revenue for r in rows), 2**64 - 1),  # saturates, as the stored sum does
        "groups": sorted({group for r in rows for group in r.groups}),
        "is_live": any(r.session_is_live for r in rows),
        "closed": False,
        "last_received_at": max(r.received_at for r in rows),
    }


def first_events(rows: list[EventRow]) -> dict[str, EventRow]:
    """Per session id, its earliest event in `rows` (the first one of equal times), in one pass."""
    firsts: dict[str, EventRow] = {}
    for row in rows:
        if row.session_id and row.name not in SESSION_EVENTS:
            current = firsts.get(row.session_id)
            if current is None or row.created_at < current.created_at:
                firsts[row.session_id] = row
    return firsts


def session_start_row(first: EventRow) -> EventRow:
    """A copy of the session's first event, 100 ms before it (docs/contract.md §7)."""
    return msgspec.structs.replace(
        first,
        id=session_event_id("session_start", first.project_id, first.session_id),
        id_from_client=False,
        name="session_start",
        created_at=first.created_at - SESSION_START_LEAD_MS,
        revenue=0,
        duration=0,
    )


def session_end_row(session: dict[str, Any], received_ms: int) -> EventRow:
    """The `session_end` of a session row: exit path, duration, bounce flag, 1 s after its end."""
    ended_at = int(session["ended_at"])
    bounce = "true" if session["screen_view_count"] <= 1 else "false"
    return EventRow(
        id=session_event_id("session_end", session["project_id"], session["id"]),
        id_from_client=False,
        name="session_end",
        project_id=session["project_id"],
        device_id=session["device_id"],
        profile_id=session["profile_id"],
        session_id=session["id"],
        created_at=ended_at + SESSION_END_LAG_MS,
        received_at=received_ms,
        properties=msgspec.json.encode({"__bounce": bounce}).decode(),
        groups=list(session["groups"]),
        path=session["exit_path"],
        origin=session["exit_origin"],
        referrer=session["referrer"],
        referrer_name=session["referrer_name"],
        referrer_type=session["referrer_type"],
        duration=ended_at - int(session["created_at"]),
        **{name: session[name] for name in GEO_AND_AGENT_NAMES},
    )

"""Session aggregates, `session_start` and `session_end` rows as SQL (storage.session_aggregates),
against the contract's definition written out row by row (docs/contract.md §7, OpenPanel's
`session-buffer.ts`).

The references below are the per-row Python the writer ran before these became SQL; random
commits (equal times, rows without a path, identified and anonymous rows, saturating revenue,
null coordinates, rows that do not extend their session) and random quiet sessions must give the
same rows either way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.database import arrow_result, registered
from storage.schema import EVENT_COLUMNS, GEO_AND_AGENT_NAMES, SESSION_ARROW_SCHEMA
from storage.session_aggregates import (
    EVENT_BATCH_SCHEMA,
    REFERRER_COLUMNS,
    event_batch,
    insert_session_ends,
    session_aggregates,
    session_starts,
    with_session_referrers,
)
from storage.write_request import EventRow

# Fixed forever (docs/contract.md §7): a session's events must get the same ids on every resend,
# in every release.
_SESSION_EVENT_NAMESPACE = uuid.UUID("2b0a1c4e-6f3d-5a7b-8c9d-1e2f3a4b5c6d")
_UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
_MAX_REVENUE = 2**64 - 1


# ---- the definition, row by row --------------------------------------------------------------

def session_event_id(name: str, project_id: str, session_id: str) -> str:
    """The one id a session's `session_start` (or `session_end`) can ever have."""
    return str(uuid.uuid5(_SESSION_EVENT_NAMESPACE, f"{name}:{project_id}:{session_id}"))


def reference_aggregates(rows: list[EventRow]) -> list[dict[str, Any]]:
    grouped: dict[str, list[EventRow]] = {}
    for row in rows:
        if row.session_id and row.extends_session and row.name not in ("session_start", "session_end"):
            grouped.setdefault(row.session_id, []).append(row)
    return [{"seq": n, **_aggregate(members)} for n, members in enumerate(grouped.values())]


def _aggregate(rows: list[EventRow]) -> dict[str, Any]:
    first = min(rows, key=lambda r: r.created_at)  # the first of equal times
    last = max(rows, key=lambda r: r.created_at)  # the first of equal times
    identified = [r.profile_id for r in rows if r.profile_id != r.device_id]
    query = msgspec.json.decode(first.properties, type=dict[str, str])
    screen_views = sum(1 for r in rows if r.name == "screen_view" and r.path)
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
        "revenue": min(sum(r.revenue for r in rows), _MAX_REVENUE),
        "groups": sorted({group for r in rows for group in r.groups}),
        "is_live": any(r.session_is_live for r in rows),
        "closed": False,
        "last_received_at": max(r.received_at for r in rows),
    }


def reference_starts(rows: list[EventRow], session_ids: set[str]) -> list[dict[str, Any]]:
    """A copy of each session's earliest event (of any kind but session events), 100 ms before it."""
    firsts: dict[str, EventRow] = {}
    for row in rows:
        if row.session_id in session_ids and row.name not in ("session_start", "session_end"):
            current = firsts.get(row.session_id)
            if current is None or row.created_at < current.created_at:
                firsts[row.session_id] = row
    starts = [msgspec.structs.replace(first, id=session_event_id("session_start", first.project_id, first.session_id),
                                      name="session_start", created_at=first.created_at - 100, revenue=0, duration=0)
              for first in firsts.values()]
    return [_as_columns(start) for start in starts]


def reference_end(session: dict[str, Any], received_ms: int) -> dict[str, Any]:
    """A session's `session_end`: exit page, duration, bounce flag, 1 s after its last event."""
    ended_at = session["ended_at"]
    return {
        "id": session_event_id("session_end", session["project_id"], session["id"]),
        "name": "session_end",
        "sdk_name": "",
        "sdk_version": "",
        "device_id": session["device_id"],
        "profile_id": session["profile_id"],
        "project_id": session["project_id"],
        "session_id": session["id"],
        "groups": list(session["groups"]),
        "path": session["exit_path"],
        "origin": session["exit_origin"],
        **{name: session[name] for name in ("referrer", "referrer_name", "referrer_type")},
        "revenue": 0,
        "duration": ended_at - session["created_at"],
        "properties": msgspec.json.encode({"__bounce": "true" if session["screen_view_count"] <= 1 else "false"}).decode(),
        "created_at": ended_at + 1000,
        **{name: session[name] for name in GEO_AND_AGENT_NAMES},
        "imported_at": None,
        "received_at": received_ms,
    }


def _as_columns(row: EventRow) -> dict[str, Any]:
    """The row's stored columns (but `seq`)."""
    record = msgspec.structs.asdict(row)
    del record["id_from_client"], record["session_is_live"], record["extends_session"]
    return record


# ---- the same through SQL ------------------------------------------------------------------

@pytest.fixture(scope="module")
def connection() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as connection:
        yield connection


def _plain(table: pa.Table) -> list[dict[str, Any]]:
    """Rows with times as epoch milliseconds, as `EventRow` has them."""
    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            millis = pc.cast(pc.cast(table.column(index), pa.timestamp("ms")), pa.int64())
            table = table.set_column(index, field.name, millis)
    return table.to_pylist()


def sql_aggregates_and_starts(connection: duckdb.DuckDBPyConnection, rows: list[EventRow]
                              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    batch = event_batch(rows)
    with registered(connection, "incoming_events", batch):
        aggregates = session_aggregates(connection, batch)
        starts = session_starts(connection, batch, aggregates.select(["id"]), len(rows))
    start_rows = _plain(starts)
    assert sorted(r.pop("ordinal") for r in start_rows) == list(range(len(rows), len(rows) + len(start_rows)))
    for start in start_rows:
        del start["id_from_client"], start["extends_session"], start["session_is_live"]
    return _plain(aggregates), start_rows


# ---- random commits ----------------------------------------------------------------------------

_TIMES = st.sampled_from([1_700_000_000_000, 1_700_000_000_001, 1_700_000_060_000, 1_700_000_900_000])


@st.composite
def event_rows(draw: st.DrawFn) -> EventRow:
    device = draw(st.sampled_from(["dev-a", "dev-b"]))
    utm = draw(st.dictionaries(st.sampled_from([f"__query.{n}" for n in _UTM] + ["plain"]),
                               st.text(max_size=4), max_size=3))
    return EventRow(
        id=str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
        id_from_client=draw(st.booleans()),
        name=draw(st.sampled_from(["screen_view", "click", "session_start", "purchase"])),
        project_id="proj",
        device_id=device,
        profile_id=draw(st.sampled_from([device, "user-1", "user-2"])),
        session_id=draw(st.sampled_from(["", "s-1", "s-2", "s-ü"])),
        created_at=draw(_TIMES),
        received_at=draw(_TIMES),
        properties=msgspec.json.encode(utm).decode(),
        groups=draw(st.lists(st.sampled_from(["g1", "g2", "ä"]), max_size=2)),
        path=draw(st.sampled_from(["", "/", "/cart"])),
        origin=draw(st.sampled_from(["", "https://shop.example"])),
        referrer=draw(st.sampled_from(["", "https://google.com/"])),
        revenue=draw(st.sampled_from([0, 5, _MAX_REVENUE])),
        country=draw(st.sampled_from(["", "SE"])),
        longitude=draw(st.none() | st.just(18.06)),
        latitude=draw(st.none() | st.just(59.33)),
        browser=draw(st.sampled_from(["", "Safari"])),
        session_is_live=draw(st.booleans()),
        extends_session=draw(st.booleans()),
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(event_rows(), min_size=1, max_size=25))
def test_sql_aggregates_and_starts_equal_the_row_by_row_definition(
    connection: duckdb.DuckDBPyConnection, rows: list[EventRow],
) -> None:
    aggregates, starts = sql_aggregates_and_starts(connection, rows)
    assert aggregates == reference_aggregates(rows)
    expected = reference_starts(rows, {a["id"] for a in aggregates})
    assert sorted(starts, key=lambda r: r["id"]) == sorted(expected, key=lambda r: r["id"])


@settings(max_examples=200, deadline=None)
@given(st.lists(event_rows(), min_size=1, max_size=25), st.booleans())
def test_a_commits_columns_hold_its_rows_values(rows: list[EventRow], shared: bool) -> None:
    # A request's rows share objects (its project, agent, place, receive time): columns whose rows
    # all hold one value are built another way (`_column`), and must hold the same.
    if shared:
        rows = [msgspec.structs.replace(row, received_at=rows[0].received_at, longitude=None, groups=rows[0].groups)
                for row in rows]
    expected = [{name: getattr(row, name) for name in EVENT_BATCH_SCHEMA.names if name != "ordinal"}
                for row in rows]
    columns = event_batch(rows)
    assert columns.schema == EVENT_BATCH_SCHEMA
    assert _plain(columns.drop_columns(["ordinal"])) == expected
    assert columns.column("ordinal").to_pylist() == list(range(len(rows)))


def test_session_start_ids_in_sql_equal_pythons_uuid5(connection: duckdb.DuckDBPyConnection) -> None:
    rows = [EventRow(id=str(uuid.uuid4()), id_from_client=False, name="click", project_id=project,
                     device_id="d", profile_id="d", session_id=session, created_at=1_700_000_000_000,
                     received_at=1_700_000_000_000)
            for project, session in [("p", "s"), ("prøject", "sess-𝄞"), ("p", "x" * 300)]]
    _, starts = sql_aggregates_and_starts(connection, rows)
    assert {s["id"] for s in starts} == {
        session_event_id("session_start", r.project_id, r.session_id) for r in rows}


@st.composite
def quiet_sessions(draw: st.DrawFn) -> dict[str, Any]:
    created_at = draw(_TIMES)
    device = draw(st.sampled_from(["dev-a", "dev-ü"]))
    return {
        "seq": draw(st.integers(0, 1000)),
        "id": draw(st.sampled_from(["s-1", "s-2", "sess-𝄞", "x" * 300])),
        "project_id": draw(st.sampled_from(["proj", "prøject"])),
        "device_id": device,
        "profile_id": draw(st.sampled_from([device, "user-1"])),
        "created_at": created_at,
        "ended_at": created_at + draw(st.sampled_from([0, 1, 4 * 60_000])),
        "screen_view_count": draw(st.integers(0, 3)),
        "exit_path": draw(st.sampled_from(["", "/", "/cart"])),
        "exit_origin": draw(st.sampled_from(["", "https://shop.example"])),
        "referrer": draw(st.sampled_from(["", "https://google.com/"])),
        "referrer_name": draw(st.sampled_from(["", "Google"])),
        "referrer_type": draw(st.sampled_from(["", "search"])),
        **{name: "" for name in GEO_AND_AGENT_NAMES},
        "country": draw(st.sampled_from(["", "SE"])),
        "longitude": draw(st.none() | st.just(18.06)),
        "latitude": draw(st.none() | st.just(59.33)),
        "browser": draw(st.sampled_from(["", "Safari"])),
        "groups": draw(st.lists(st.sampled_from(["g1", "g2", "ä"]), max_size=2, unique=True)),
        "is_live": draw(st.booleans()),
        "last_received_at": created_at,
    }


@settings(max_examples=100, deadline=None)
@given(st.lists(quiet_sessions(), min_size=1, max_size=8, unique_by=lambda s: (s["project_id"], s["id"])))
def test_sql_session_ends_equal_the_row_by_row_definition(sessions: list[dict[str, Any]]) -> None:
    received_ms, first_seq = 1_700_000_999_000, 41
    quiet = pa.Table.from_pylist(sessions, schema=SESSION_ARROW_SCHEMA)
    quiet = quiet.append_column("position", pa.array(range(len(sessions)), pa.int64()))
    with duckdb.connect() as connection:
        connection.execute(f"CREATE TABLE events ({', '.join(c.ddl for c in EVENT_COLUMNS)})")
        with registered(connection, "quiet_sessions", quiet):
            insert_session_ends(connection, first_seq, received_ms)
        stored = _plain(arrow_result(connection, "SELECT * REPLACE (id::VARCHAR AS id) FROM events ORDER BY seq"))
    assert stored == [{"seq": first_seq + n, **reference_end(session, received_ms)} for n, session in enumerate(sessions)]


# ---- referrer inheritance ----------------------------------------------------------------------

_REFERRER_VALUES = st.sampled_from(["", "https://www.google.com/", "Google", "search"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["", "s-1", "s-2", "s-𝄞"]), _REFERRER_VALUES, _REFERRER_VALUES,
                       _REFERRER_VALUES), min_size=1, max_size=12),
    st.dictionaries(st.sampled_from(["s-1", "s-𝄞", "s-3"]),
                    st.tuples(st.none() | _REFERRER_VALUES, st.none() | _REFERRER_VALUES,
                              st.none() | _REFERRER_VALUES), max_size=3),
)
def test_events_take_their_sessions_referrer_field_by_field(
    events: list[tuple[str, str, str, str]], sessions: dict[str, tuple[str | None, str | None, str | None]],
) -> None:
    rows = pa.table({"session_id": [e[0] for e in events],
                     **{name: [e[n + 1] for e in events] for n, name in enumerate(REFERRER_COLUMNS)}})
    merged = pa.table({"id": pa.array(list(sessions), pa.string()),
                       **{name: pa.array([s[n] for s in sessions.values()], pa.string())
                          for n, name in enumerate(REFERRER_COLUMNS)}})
    # The definition: a non-empty value of the event's session wins, else the event keeps its own
    # (OpenPanel's `events.incoming-event.ts`; the SQL the writer ran before).
    expected = [{"session_id": session_id, **{
        name: sessions.get(session_id, (None, None, None))[n] or own for n, (name, own) in
        enumerate(zip(REFERRER_COLUMNS, values, strict=True))}} for session_id, *values in events]
    assert with_session_referrers(rows, merged).to_pylist() == expected

"""Session rows and session events, computed from the event rows of one commit (docs/contract.md §7).

Input: the commit's event rows as one Arrow table (`event_batch`), registered in DuckDB as
`incoming_events`; or the open sessions the closer found. Output: one partial aggregate per
session (merged into the `sessions` table by the writer), the `session_start` rows of the sessions
seen for the first time, and `session_end` rows. Set-based: SQL over the batch (DuckDB runs it
without the GIL) and Arrow takes of its rows, no Python per row. The writer decides which
sessions are new, inside the transaction that stores their events.
"""

from __future__ import annotations

import datetime as dt
import uuid

import duckdb
import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from storage.database import arrow_result, registered
from storage.schema import EVENT_ARROW_SCHEMA, GEO_AND_AGENT_NAMES, SESSION_ARROW_SCHEMA
from storage.write_request import EventRow

SESSION_EVENTS = frozenset({"session_start", "session_end"})
SCREEN_VIEW = "screen_view"
SESSION_START_LEAD_MS = 100
SESSION_END_LAG_MS = 1000
REFERRER_COLUMNS = ("referrer", "referrer_name", "referrer_type")
_UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
# Fixed forever, like the insert-id namespace: session events get the same id on every resend.
_SESSION_EVENT_NAMESPACE = uuid.UUID("2b0a1c4e-6f3d-5a7b-8c9d-1e2f3a4b5c6d")
_DECODE_PROPERTIES = msgspec.json.Decoder(dict[str, str])

# The event columns (but `seq`) and what the writer needs besides, per row: its position in the
# commit (`ordinal`, which orders equal times and numbers the rows' seqs) and the row facts that
# are not columns (`EventRow.id_from_client`, `.session_is_live`, `.extends_session`).
_ROW_FACTS = (("id_from_client", pa.bool_()), ("session_is_live", pa.bool_()), ("extends_session", pa.bool_()))
EVENT_BATCH_SCHEMA = pa.schema([*(f for f in EVENT_ARROW_SCHEMA if f.name != "seq"), *_ROW_FACTS,
                                ("ordinal", pa.int64())])
NOT_COLUMNS = ("ordinal", *(name for name, _ in _ROW_FACTS))
_ROW_FIELD_POSITIONS = {name: EventRow.__struct_fields__.index(name)
                        for name in EVENT_BATCH_SCHEMA.names if name != "ordinal"}

_SESSION_EVENT_NAMES = ", ".join(f"'{name}'" for name in sorted(SESSION_EVENTS))
# The ordinal of a group's earliest row, the first of equal times (Python's `min`), and of its
# latest, also the first of equal times (Python's `max`).
_EARLIEST = "arg_min(ordinal, (created_at, ordinal))"
_LATEST = "arg_max(ordinal, (created_at, -ordinal))"

# Per session id, what the commit's rows add to it, in the order the sessions first appear.
# Rows that stand for the session (its first and last event, its entry and exit page) are named
# by ordinal and taken from the batch afterwards: DuckDB holds an aggregate's state in memory,
# and an `arg_min` over whole rows held ~30 KB per session (OutOfMemory at a 64 MB
# `memory_limit` for 2,000 sessions). OpenPanel's session buffer (`session-buffer.ts`): a screen
# view with a path counts as a screen view only, every other event as an event; entry and exit
# are the first and last pages, an event without a path leaving them as they are.
_SESSION_SUMMARIES = f"""
    SELECT row_number() OVER (ORDER BY min(ordinal)) - 1 AS seq,
           session_id,
           {_EARLIEST} AS first,
           {_LATEST} AS last,
           coalesce({_EARLIEST} FILTER (WHERE path <> ''), {_EARLIEST}) AS entry,
           coalesce({_LATEST} FILTER (WHERE path <> ''), {_LATEST}) AS exit,
           arg_max(profile_id, ordinal) FILTER (WHERE profile_id <> device_id) AS identified,
           count(*) AS rows,
           count(*) FILTER (WHERE name = '{SCREEN_VIEW}' AND path <> '') AS screen_views,
           -- saturates, as the stored sum does
           least(sum(revenue::HUGEINT), 18446744073709551615)::UBIGINT AS revenue,
           list_sort(list_distinct(flatten(list(groups)))) AS groups,
           bool_or(session_is_live) AS is_live,
           max(received_at) AS last_received_at
    FROM incoming_events
    WHERE session_id <> '' AND extends_session AND name NOT IN ({_SESSION_EVENT_NAMES})
    GROUP BY session_id ORDER BY seq
"""  # noqa: S608 - constant names


# A uuid5 (RFC 4122 §4.3) in SQL, equal to Python's `uuid.uuid5`: the SHA-1 of the namespace given
# by the parameter `namespace` and of `name`, as the column `uuid5_hash`; then, a level above,
# its text with the version nibble 5 and the variant bits 10. Two levels, not a scalar subquery
# per row (`(WITH h AS (SELECT sha1(...)) SELECT ... FROM h)`), which DuckDB runs as a
# correlated join: 2,000 ids took 5.7 ms so, 3.8 ms this way.
_UUID5_HASH = "sha1({namespace}::BLOB || encode({name})) AS uuid5_hash"
_UUID5_TEXT = """substr(uuid5_hash, 1, 8) || '-' || substr(uuid5_hash, 9, 4) || '-5' || substr(uuid5_hash, 14, 3)
    || '-' || '89ab'[(('0x' || substr(uuid5_hash, 17, 1))::INTEGER & 3) + 1] || substr(uuid5_hash, 18, 3)
    || '-' || substr(uuid5_hash, 21, 12)"""

# The earliest row of each session in `new_sessions` (its ordinal, in time order) and the id of
# the session's `session_start`, made of the project and session of that row.
_START_HASH = _UUID5_HASH.format(
    namespace="?", name="'session_start:' || arg_min(project_id, (created_at, ordinal)) || ':' || session_id")
_SESSION_STARTS = f"""
    SELECT ordinal, {_UUID5_TEXT} AS id FROM (
        SELECT {_EARLIEST} AS ordinal, min(created_at) AS first_at, {_START_HASH}
        FROM incoming_events e SEMI JOIN new_sessions n ON n.id = e.session_id
        WHERE e.name NOT IN ({_SESSION_EVENT_NAMES})
        GROUP BY e.session_id)
    ORDER BY first_at, ordinal
"""  # noqa: S608 - constant names

# The `session_end` of each session in `quiet_sessions` (rows of `sessions` plus their `position`),
# straight from its row: its id, exit page, duration and bounce flag, 1 s after its last event.
_END_HASH = _UUID5_HASH.format(namespace="$namespace", name="'session_end:' || project_id || ':' || id")
_SESSION_END_COLUMNS = {
    "id": _UUID5_TEXT,
    "name": "'session_end'",
    "project_id": "project_id",
    "device_id": "device_id",
    "profile_id": "profile_id",
    "session_id": "id",
    "created_at": f"ended_at + to_milliseconds({SESSION_END_LAG_MS})",
    "received_at": "epoch_ms($received_ms::BIGINT)",
    "properties": """'{"__bounce":"' || CASE WHEN screen_view_count <= 1 THEN 'true' ELSE 'false' END || '"}'""",
    "groups": "groups",
    "path": "exit_path",
    "origin": "exit_origin",
    **{name: name for name in REFERRER_COLUMNS},
    # As TIMESTAMP: DuckDB's epoch_ms fails on a millisecond timestamp read from Arrow.
    "duration": "(epoch_ms(ended_at::TIMESTAMP) - epoch_ms(created_at::TIMESTAMP))::UBIGINT",
    **{name: name for name in GEO_AND_AGENT_NAMES},
    "seq": "$first_seq::BIGINT + position",
}
_INSERT_SESSION_ENDS = (
    f"INSERT INTO events ({', '.join(_SESSION_END_COLUMNS)}) "  # noqa: S608 - constant names
    f"SELECT {', '.join(_SESSION_END_COLUMNS.values())} FROM (SELECT *, {_END_HASH} FROM quiet_sessions) "
    "ORDER BY position"
)


def event_batch(rows: list[EventRow]) -> pa.Table:
    """`rows` as columns (`EVENT_BATCH_SCHEMA`), by one transposition of their tuples (a third
    cheaper than a getattr per column per row)."""
    if not rows:
        return EVENT_BATCH_SCHEMA.empty_table()
    values = list(zip(*(msgspec.structs.astuple(row) for row in rows), strict=True))
    columns = {name: _column(values[position], EVENT_BATCH_SCHEMA.field(name).type)
               for name, position in _ROW_FIELD_POSITIONS.items()}
    columns["ordinal"] = pa.array(range(len(rows)), pa.int64())
    return pa.Table.from_pydict(columns, schema=EVENT_BATCH_SCHEMA)


def _column(values: tuple[object, ...], kind: pa.DataType) -> pa.Array:
    """`values` as an Arrow array. A column that holds one value in every row (what a request's
    rows share: project, agent, place, SDK, receive time; about half the columns) is that value
    repeated, several times cheaper than converting it row by row (7 instead of 51 µs for 2,000
    rows of text); the rows share the very object, so the test is mostly identity."""
    first = values[0]
    if values[-1] is first and values.count(first) == len(values):
        return pa.repeat(pa.scalar(first, kind), len(values))
    return pa.array(values, kind)


def session_aggregates(connection: duckdb.DuckDBPyConnection, batch: pa.Table) -> pa.Table:
    """Per session `batch` (registered as `incoming_events`) touches, what its rows make of it, in
    the `sessions` table's columns; `seq` numbers them from 0 in the order they first appear.

    The rows a summary names are taken from the batch by Arrow, column by column: streamed
    through DuckDB beside the summaries, the wide rows were buffered inside `memory_limit`.
    """
    summaries = arrow_result(connection, _SESSION_SUMMARIES)
    first = batch.take(summaries.column("first"))
    last = batch.select(["created_at"]).take(summaries.column("last"))
    entry = batch.select(["path", "origin"]).take(summaries.column("entry"))
    exit_page = batch.select(["path", "origin"]).take(summaries.column("exit"))
    utm = _utm_columns(first.column("properties"))
    screen_views = summaries.column("screen_views")
    started, ended = first.column("created_at"), last.column("created_at")
    columns = {
        "seq": summaries.column("seq"),
        "id": summaries.column("session_id"),
        "project_id": first.column("project_id"),
        "device_id": first.column("device_id"),
        "profile_id": pc.coalesce(summaries.column("identified"), first.column("profile_id")),
        "created_at": started,
        "ended_at": ended,
        "duration": pc.subtract(pc.cast(ended, pa.int64()), pc.cast(started, pa.int64())),
        "event_count": pc.subtract(summaries.column("rows"), screen_views),
        "screen_view_count": screen_views,
        "is_bounce": pc.less_equal(screen_views, 1),
        "entry_path": entry.column("path"),
        "entry_origin": entry.column("origin"),
        "exit_path": exit_page.column("path"),
        "exit_origin": exit_page.column("origin"),
        **{name: first.column(name) for name in REFERRER_COLUMNS},
        **utm,
        **{name: first.column(name) for name in GEO_AND_AGENT_NAMES},
        **{name: summaries.column(name) for name in ("revenue", "groups", "is_live")},
        "closed": pa.array(np.zeros(len(summaries), dtype=bool)),
        "last_received_at": summaries.column("last_received_at"),
    }
    return pa.table(columns).cast(SESSION_ARROW_SCHEMA)


def session_starts(connection: duckdb.DuckDBPyConnection, batch: pa.Table, new_sessions: pa.Table,
                   first_ordinal: int) -> pa.Table:
    """The `session_start` rows of the sessions in `new_sessions` (an `id` column), as rows of
    `batch` (registered as `incoming_events`) numbered on from `first_ordinal`, in time order:
    each a copy of its session's earliest event, 100 ms before it (docs/contract.md §7)."""
    with registered(connection, "new_sessions", new_sessions):
        ids = arrow_result(connection, _SESSION_STARTS, [_SESSION_EVENT_NAMESPACE.bytes])
    starts = batch.take(ids.column("ordinal"))
    count = len(starts)
    replaced = {
        "id": ids.column("id"),
        "name": pa.repeat("session_start", count),
        "created_at": pc.subtract(starts.column("created_at"),
                                  pa.scalar(dt.timedelta(milliseconds=SESSION_START_LEAD_MS), pa.duration("ms"))),
        "revenue": pa.repeat(pa.scalar(0, pa.uint64()), count),
        "duration": pa.repeat(pa.scalar(0, pa.uint64()), count),
        "ordinal": pa.array(range(first_ordinal, first_ordinal + count), pa.int64()),
    }
    for name, values in replaced.items():
        starts = starts.set_column(starts.schema.get_field_index(name), name, values)
    return starts


def with_session_referrers(rows: pa.Table, sessions: pa.Table) -> pa.Table:
    """`rows` (event rows) with their session's referrer: field by field, a non-empty value of
    the row's session in `sessions` (an `id` and the referrer columns) replaces the row's own, as
    OpenPanel merges the session's referrer over the event's, leaving out empty values
    (`events.incoming-event.ts`). In Arrow: as a join in the insert it cost a third of the insert
    (4 of 11 ms for 2,000 events)."""
    position = pc.index_in(rows.column("session_id"), value_set=sessions.column("id"))
    for name in REFERRER_COLUMNS:
        own = rows.column(name)
        inherited = sessions.column(name).take(position).cast(own.type)  # null: no session here
        wins = pc.fill_null(pc.not_equal(inherited, ""), False)
        rows = rows.set_column(rows.schema.get_field_index(name), name, pc.if_else(wins, inherited, own))
    return rows


def _utm_columns(properties: pa.ChunkedArray) -> dict[str, pa.Array]:
    """utm_* of each properties text: from its page's query, which flattening stored as
    `__query.<name>`. Only the texts that hold such a key are decoded (few: a campaign's landing)."""
    values = {name: [""] * len(properties) for name in _UTM}
    positions = np.flatnonzero(pc.match_substring(properties, '"__query.utm_').to_numpy(zero_copy_only=False))
    for position, text in zip(positions.tolist(), properties.take(positions).to_pylist(), strict=True):
        query = _DECODE_PROPERTIES.decode(text)
        for name in _UTM:
            values[name][position] = query.get(f"__query.{name}", "")
    return {name: pa.array(column, pa.string()) for name, column in values.items()}


def insert_session_ends(connection: duckdb.DuckDBPyConnection, first_seq: int, received_ms: int) -> None:
    """Insert the `session_end` of each of `quiet_sessions` (rows of `sessions` and their
    `position`), numbered from `first_seq` in that order (docs/contract.md §7)."""
    connection.execute(_INSERT_SESSION_ENDS, {"namespace": _SESSION_EVENT_NAMESPACE.bytes, "received_ms": received_ms,
                                              "first_seq": first_seq})

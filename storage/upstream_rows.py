"""The rows the gateway sends upstream, in OpenPanel's column names (docs/contract.md §10).

Input: the local tables. Output: DuckDB SQL that reads a batch of them as the gateway's
*canonical* upstream rows — every column the gateway knows, named as OpenPanel names it, typed
as the gateway holds it. `sync.shape` then fits them to the columns and types the upstream
really has. This is the one list of what the gateway sends; the ledger's snapshot tables are
made from it too.

Events and replay chunks never change, so a batch is re-read by seq on every attempt. Sessions,
profiles and groups change (and move to a later seq), so a batch of them is snapshotted in the
ledger (`sync_snapshot_<table>`) when it is recorded, and every attempt sends that snapshot.
Properties stay the local JSON text all the way: the upstream parses them into its
`Map(String, String)` and adds the gateway's `__gateway` there (`sync.shape`), which costs it a
fraction of what building a map here did (`bench/sync.py`: DuckDB's `json_transform` to a MAP was
four fifths of a pass).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from storage.schema import GEO_AND_AGENT_NAMES


@dataclass(frozen=True, slots=True)
class UpstreamColumn:
    name: str
    sql_type: str  # how the snapshot tables hold it (DuckDB)
    local: str  # DuckDB expression over the local table's row


_GEO_AGENT_TYPES = {"longitude": "FLOAT", "latitude": "FLOAT"}
_GEO_AND_AGENT = tuple(
    UpstreamColumn(name, _GEO_AGENT_TYPES.get(name, "VARCHAR"), f"{name}::{_GEO_AGENT_TYPES.get(name, 'VARCHAR')}")
    for name in GEO_AND_AGENT_NAMES
)

COLUMNS: dict[str, tuple[UpstreamColumn, ...]] = {
    "events": (
        UpstreamColumn("id", "VARCHAR", "id::VARCHAR"),
        *(UpstreamColumn(name, "VARCHAR", name) for name in (
            "name", "sdk_name", "sdk_version", "device_id", "profile_id", "project_id", "session_id")),
        UpstreamColumn("groups", "VARCHAR[]", "groups"),
        *(UpstreamColumn(name, "VARCHAR", name) for name in (
            "path", "origin", "referrer", "referrer_name", "referrer_type")),
        UpstreamColumn("revenue", "UBIGINT", "revenue"),
        UpstreamColumn("duration", "UBIGINT", "duration"),
        UpstreamColumn("properties", "VARCHAR", "properties"),
        UpstreamColumn("created_at", "TIMESTAMP", "created_at"),
        *_GEO_AND_AGENT,
        UpstreamColumn("imported_at", "TIMESTAMP", "imported_at"),
    ),
    "sessions": (
        *(UpstreamColumn(name, "VARCHAR", name) for name in ("id", "project_id", "profile_id", "device_id")),
        UpstreamColumn("groups", "VARCHAR[]", "groups"),
        UpstreamColumn("created_at", "TIMESTAMP", "created_at"),
        UpstreamColumn("ended_at", "TIMESTAMP", "ended_at"),
        UpstreamColumn("is_bounce", "BOOLEAN", "is_bounce"),
        *(UpstreamColumn(name, "VARCHAR", name) for name in ("entry_origin", "entry_path", "exit_origin", "exit_path")),
        UpstreamColumn("screen_view_count", "BIGINT", "screen_view_count"),
        UpstreamColumn("revenue", "DOUBLE", "revenue::DOUBLE"),
        UpstreamColumn("event_count", "BIGINT", "event_count"),
        UpstreamColumn("duration", "UBIGINT", "duration"),
        *_GEO_AND_AGENT,
        *(UpstreamColumn(name, "VARCHAR", name) for name in (
            "utm_medium", "utm_source", "utm_campaign", "utm_content", "utm_term",
            "referrer", "referrer_name", "referrer_type")),
        UpstreamColumn("sign", "TINYINT", "1"),
        UpstreamColumn("version", "UBIGINT", "seq"),  # a later local change has a higher seq
        UpstreamColumn("properties", "VARCHAR", "'{}'"),  # the upstream adds `__gateway`
    ),
    "profiles": (
        UpstreamColumn("id", "VARCHAR", "id"),
        UpstreamColumn("is_external", "BOOLEAN", "is_external"),
        *(UpstreamColumn(name, "VARCHAR", name) for name in ("first_name", "last_name", "email", "avatar")),
        UpstreamColumn("properties", "VARCHAR", "properties"),
        UpstreamColumn("project_id", "VARCHAR", "project_id"),
        UpstreamColumn("groups", "VARCHAR[]", "groups"),
        UpstreamColumn("created_at", "TIMESTAMP", "created_at"),
        UpstreamColumn("last_seen_at", "TIMESTAMP", "updated_at"),
    ),
    "groups": (
        *(UpstreamColumn(name, "VARCHAR", name) for name in ("id", "project_id", "type", "name")),
        UpstreamColumn("properties", "VARCHAR", "properties"),
        UpstreamColumn("created_at", "TIMESTAMP", "created_at"),
        UpstreamColumn("version", "UBIGINT", "seq"),
        UpstreamColumn("deleted", "UTINYINT", "0"),
    ),
    "session_replay_chunks": (
        UpstreamColumn("project_id", "VARCHAR", "project_id"),
        UpstreamColumn("session_id", "VARCHAR", "session_id"),
        UpstreamColumn("chunk_index", "USMALLINT", "chunk_index"),
        UpstreamColumn("started_at", "TIMESTAMP", "started_at"),
        UpstreamColumn("ended_at", "TIMESTAMP", "ended_at"),
        UpstreamColumn("events_count", "UINTEGER", "events_count"),
        UpstreamColumn("is_full_snapshot", "BOOLEAN", "is_full_snapshot"),
        UpstreamColumn("payload", "VARCHAR", "payload"),
    ),
}

TABLE_ORDER = ("events", "sessions", "profiles", "groups", "session_replay_chunks")
SNAPSHOTTED = frozenset({"sessions", "profiles", "groups"})
# Most rows in one batch of a snapshotted table, whatever `sync.batch_rows` says: copying a
# batch into its snapshot, and marking what upstream holds of each session when it is done,
# are writer transactions that grow with the batch; at 2,000 rows each takes ~10-25 ms on a
# quiet 2-core box (`bench/sync.py --sessions-heavy`), far under the ~50 ms a sync step may hold
# the writer.
SNAPSHOT_BATCH_ROWS = 2_000

# What makes a row itself, for reconciling by id with an upstream that may already hold it:
# the first column is the one looked up upstream, the rest narrow it down.
ROW_KEYS: dict[str, tuple[str, ...]] = {
    "events": ("id",),
    "sessions": ("id", "version", "sign"),
    "profiles": ("id", "project_id", "last_seen_at"),
    "groups": ("id", "project_id", "version"),
    "session_replay_chunks": ("session_id", "project_id", "chunk_index"),
}

# The time column that narrows such a lookup (OpenPanel partitions and sorts by it).
RECONCILE_TIME_COLUMN = {"events": "created_at", "sessions": "created_at", "session_replay_chunks": "started_at"}

def snapshot_table(table: str) -> str:
    return f"sync_snapshot_{table}"


def snapshot_ddl(table: str) -> str:
    """The ledger's snapshot table for a mutable table: its batch, local seq, upstream columns."""
    body = ", ".join(f"{c.name} {c.sql_type}" for c in COLUMNS[table])
    return f"CREATE TABLE {snapshot_table(table)} (batch_id BIGINT NOT NULL, seq BIGINT NOT NULL, {body})"


def _names(table: str) -> str:
    return ", ".join(c.name for c in COLUMNS[table])


def snapshot_insert(table: str) -> str:
    """Copy `$first`..`$last` of a mutable table into its snapshot as batch `$batch` (writer)."""
    values = ", ".join(f"{c.local} AS {c.name}" for c in COLUMNS[table])
    new_rows = f"SELECT $batch, seq, {values} FROM {table} WHERE seq BETWEEN $first AND $last"  # noqa: S608
    if table != "sessions":
        return f"INSERT INTO {snapshot_table(table)} {new_rows}"
    # Upstream is VersionedCollapsing: the version it holds is cancelled (the same row with
    # sign -1) in the same block that brings the new one.
    cancels = ("SELECT $batch, s.seq, h.* REPLACE (-1::TINYINT AS sign) FROM sync_upstream_sessions h "
               "JOIN sessions s USING (id) WHERE s.seq BETWEEN $first AND $last")
    return f"INSERT INTO {snapshot_table(table)} {cancels} UNION ALL {new_rows}"


def upstream_sessions_ddl(name: str = "sync_upstream_sessions") -> str:
    """The session rows upstream holds now (sign 1): the next version cancels this one.

    One row per id, kept by `storage.ledger.finish_batch` (delete, then insert); no primary key,
    whose index would be held in memory whole and grow with every session forwarded."""
    body = ", ".join(f"{c.name} {c.sql_type}" for c in COLUMNS["sessions"])
    return f"CREATE TABLE {name} ({body})"


def batch_select(table: str) -> str:
    """SQL reading one batch as canonical upstream rows, `seq` first (reader cursor).

    Immutable tables take `$first` and `$last`; snapshotted ones `$batch`. `properties` is read
    as JSON text (see the module's docstring).

    No ORDER BY: a sort pins the whole batch inside DuckDB's `memory_limit` (a 50,000-event batch
    is ~50 MB), while a scan streams; the rows come in insertion order, which is `seq` order, and
    `storage.ledger.read_batch` puts them in `batch_order` outside DuckDB when they are not.
    """
    if table in SNAPSHOTTED:
        names = ", ".join(c.name for c in COLUMNS[table])
        return f"SELECT seq, {names} FROM {snapshot_table(table)} WHERE batch_id = $batch"  # noqa: S608
    values = ", ".join(f"{c.local} AS {c.name}" for c in COLUMNS[table])
    return f"SELECT seq, {values} FROM {table} WHERE seq BETWEEN $first AND $last"  # noqa: S608


def batch_order(table: str) -> list[tuple[str, str]]:
    """The order of a batch's rows: by `seq`; a session's cancel row (sign -1) before its new version."""
    return [("seq", "ascending"), ("sign", "ascending")] if table == "sessions" else [("seq", "ascending")]


def batch_parameters(table: str, *, batch_id: int, first: int, last: int) -> dict[str, object]:
    """The parameters `batch_select(table)` uses (DuckDB refuses unused ones)."""
    if table in SNAPSHOTTED:
        return {"batch": batch_id}
    return {"first": first, "last": last}


# Columns an upstream table must have for the gateway's rows to mean anything there.
REQUIRED: dict[str, tuple[str, ...]] = {
    "events": ("id", "project_id", "name", "created_at"),
    "sessions": ("id", "project_id", "created_at", "sign", "version"),
    "profiles": ("id", "project_id", "last_seen_at"),
    "groups": ("id", "project_id", "version"),
    "session_replay_chunks": ("project_id", "session_id", "chunk_index", "started_at", "payload"),
}

_ARROW_TYPES = {
    "VARCHAR": pa.string(), "VARCHAR[]": pa.list_(pa.string()), "TIMESTAMP": pa.timestamp("us"),
    "BOOLEAN": pa.bool_(), "TINYINT": pa.int8(), "UTINYINT": pa.uint8(), "USMALLINT": pa.uint16(),
    "UINTEGER": pa.uint32(), "BIGINT": pa.int64(), "UBIGINT": pa.uint64(), "FLOAT": pa.float32(),
    "DOUBLE": pa.float64(),
}


def canonical_schema(table: str) -> pa.Schema:
    """What the gateway's upstream rows hold, as Arrow types (without `seq`): what the upstream's
    columns must be able to take. `properties` is a string map here, JSON text in a batch."""
    return pa.schema([
        (c.name, pa.map_(pa.string(), pa.string()) if c.name == "properties" else _ARROW_TYPES[c.sql_type])
        for c in COLUMNS[table]])

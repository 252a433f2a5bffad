"""The local tables (docs/contract.md §8, §10): OpenPanel's column names plus local bookkeeping.

One list of columns per table is the single source for the DDL, the Arrow schema the writer
inserts with, and the row Structs built on the request path, so the three cannot drift apart.
Times are UTC `TIMESTAMP` with millisecond precision; `properties` is JSON text locally and
becomes `Map(String, String)` upstream.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    sql_type: str
    arrow_type: pa.DataType
    compression: str = ""  # DuckDB's method for this column; "" lets DuckDB choose per segment

    @property
    def ddl(self) -> str:
        """The column's definition in CREATE TABLE."""
        return f"{self.name} {self.sql_type}{_compression_clause(self.compression)}"


def _compression_clause(method: str) -> str:
    return f" USING COMPRESSION {method}" if method else ""


# Free-form JSON text (properties, replay payloads) is most of a row's bytes. DuckDB's automatic
# choice for it is a dictionary with FSST, whose analysis made a checkpoint's largest cost;
# zstd writes it in ~40% of the time into ~1/4 of the space and reads it faster (checkpoints of
# 180k events of `bench/ingest.py --mix sparse`: 2.26 -> 1.24 s, 93 -> 20 MB). Needs a store
# file of storage version v1.2.0 or later (`storage.database.migrate` leaves it out otherwise).
JSON_TEXT_COMPRESSION = "zstd"


def without_json_text_compression(ddl: str) -> str:
    """`ddl` as made for a store file that cannot hold `JSON_TEXT_COMPRESSION` (and as releases
    before migration 7 made every table)."""
    return ddl.replace(_compression_clause(JSON_TEXT_COMPRESSION), "")


_TEXT = ("VARCHAR NOT NULL DEFAULT ''", pa.string())

# Where and on what: the enrichment columns events and sessions share (docs/contract.md §6).
_GEO_AND_AGENT: tuple[Column, ...] = (
    Column("country", *_TEXT),
    Column("city", *_TEXT),
    Column("region", *_TEXT),
    Column("longitude", "DOUBLE", pa.float64()),
    Column("latitude", "DOUBLE", pa.float64()),
    Column("os", *_TEXT),
    Column("os_version", *_TEXT),
    Column("browser", *_TEXT),
    Column("browser_version", *_TEXT),
    Column("device", *_TEXT),
    Column("brand", *_TEXT),
    Column("model", *_TEXT),
)

# Order follows OpenPanel's `events` table; `seq` and `received_at` are local bookkeeping.
EVENT_COLUMNS: tuple[Column, ...] = (
    Column("seq", "BIGINT NOT NULL", pa.int64()),
    Column("id", "UUID NOT NULL", pa.string()),
    Column("name", *_TEXT),
    Column("sdk_name", *_TEXT),
    Column("sdk_version", *_TEXT),
    Column("device_id", *_TEXT),
    Column("profile_id", *_TEXT),
    Column("project_id", *_TEXT),
    Column("session_id", *_TEXT),
    Column("groups", "VARCHAR[] NOT NULL DEFAULT []", pa.list_(pa.string())),
    Column("path", *_TEXT),
    Column("origin", *_TEXT),
    Column("referrer", *_TEXT),
    Column("referrer_name", *_TEXT),
    Column("referrer_type", *_TEXT),
    Column("revenue", "UBIGINT NOT NULL DEFAULT 0", pa.uint64()),
    Column("duration", "UBIGINT NOT NULL DEFAULT 0", pa.uint64()),
    Column("properties", "VARCHAR NOT NULL DEFAULT '{}'", pa.string(), JSON_TEXT_COMPRESSION),
    Column("created_at", "TIMESTAMP NOT NULL", pa.timestamp("ms")),
    *_GEO_AND_AGENT,
    Column("imported_at", "TIMESTAMP", pa.timestamp("ms")),
    Column("received_at", "TIMESTAMP NOT NULL", pa.timestamp("ms")),
)

# One row per (project_id, id), without a primary key since migration 6: the writer keeps the
# pair unique (`storage.profiles.StoredProfiles`), as it does for sessions.
PROFILE_COLUMNS: tuple[Column, ...] = (
    Column("seq", "BIGINT NOT NULL", pa.int64()),
    Column("project_id", "VARCHAR NOT NULL", pa.string()),
    Column("id", "VARCHAR NOT NULL", pa.string()),
    Column("first_name", *_TEXT),
    Column("last_name", *_TEXT),
    Column("email", *_TEXT),
    Column("avatar", *_TEXT),
    Column("properties", "VARCHAR NOT NULL DEFAULT '{}'", pa.string(), JSON_TEXT_COMPRESSION),
    Column("is_external", "BOOLEAN NOT NULL DEFAULT true", pa.bool_()),
    Column("created_at", "TIMESTAMP NOT NULL", pa.timestamp("ms")),
    Column("updated_at", "TIMESTAMP NOT NULL", pa.timestamp("ms")),
)

# Added by migration 2: the groups a profile was assigned to (`assign_group`).
PROFILE_GROUPS = Column("groups", "VARCHAR[] NOT NULL DEFAULT []", pa.list_(pa.string()))

# One row per session (docs/contract.md §7), kept current as events arrive. `ended_at` is always the last
# event's time; `closed` says whether the session's `session_end` has been emitted.
SESSION_COLUMNS: tuple[Column, ...] = (
    Column("seq", "BIGINT NOT NULL", pa.int64()),
    # No primary key: its index would be held in memory whole (~70 bytes per session), and would
    # grow with the store until DuckDB's memory_limit failed every commit (bench/ingest.py --mix
    # sparse, 2.3M sessions). The writer keeps ids unique: it looks every touched session up
    # before it writes (`storage.store._MERGED_SESSIONS`) and replaces rows by rowid.
    Column("id", "VARCHAR NOT NULL", pa.string()),
    Column("project_id", *_TEXT),
    Column("device_id", *_TEXT),
    Column("profile_id", *_TEXT),
    Column("created_at", "TIMESTAMP NOT NULL", pa.timestamp("ms")),
    Column("ended_at", "TIMESTAMP NOT NULL", pa.timestamp("ms")),
    Column("duration", "UBIGINT NOT NULL DEFAULT 0", pa.uint64()),
    Column("event_count", "BIGINT NOT NULL DEFAULT 0", pa.int64()),
    Column("screen_view_count", "BIGINT NOT NULL DEFAULT 0", pa.int64()),
    Column("is_bounce", "BOOLEAN NOT NULL DEFAULT true", pa.bool_()),
    Column("entry_path", *_TEXT),
    Column("entry_origin", *_TEXT),
    Column("exit_path", *_TEXT),
    Column("exit_origin", *_TEXT),
    Column("referrer", *_TEXT),
    Column("referrer_name", *_TEXT),
    Column("referrer_type", *_TEXT),
    Column("utm_source", *_TEXT),
    Column("utm_medium", *_TEXT),
    Column("utm_campaign", *_TEXT),
    Column("utm_content", *_TEXT),
    Column("utm_term", *_TEXT),
    *_GEO_AND_AGENT,
    Column("revenue", "UBIGINT NOT NULL DEFAULT 0", pa.uint64()),
    Column("groups", "VARCHAR[] NOT NULL DEFAULT []", pa.list_(pa.string())),
    Column("is_live", "BOOLEAN NOT NULL", pa.bool_()),
    Column("closed", "BOOLEAN NOT NULL DEFAULT false", pa.bool_()),
    Column("last_received_at", "TIMESTAMP NOT NULL", pa.timestamp("ms")),
)

GROUP_COLUMNS: tuple[Column, ...] = (
    Column("seq", "BIGINT NOT NULL", pa.int64()),
    Column("project_id", "VARCHAR NOT NULL", pa.string()),
    Column("id", "VARCHAR NOT NULL", pa.string()),
    Column("type", *_TEXT),
    Column("name", *_TEXT),
    Column("properties", "VARCHAR NOT NULL DEFAULT '{}'", pa.string(), JSON_TEXT_COMPRESSION),
    Column("created_at", "TIMESTAMP NOT NULL", pa.timestamp("ms")),
    Column("updated_at", "TIMESTAMP NOT NULL", pa.timestamp("ms")),
)

REPLAY_COLUMNS: tuple[Column, ...] = (
    Column("seq", "BIGINT NOT NULL", pa.int64()),
    Column("project_id", "VARCHAR NOT NULL", pa.string()),
    Column("session_id", "VARCHAR NOT NULL", pa.string()),
    Column("chunk_index", "USMALLINT NOT NULL", pa.uint16()),
    Column("started_at", "TIMESTAMP NOT NULL", pa.timestamp("ms")),
    Column("ended_at", "TIMESTAMP NOT NULL", pa.timestamp("ms")),
    Column("events_count", "UINTEGER NOT NULL", pa.uint32()),
    Column("is_full_snapshot", "BOOLEAN NOT NULL", pa.bool_()),
    Column("payload", "VARCHAR NOT NULL", pa.string(), JSON_TEXT_COMPRESSION),
    Column("received_at", "TIMESTAMP NOT NULL", pa.timestamp("ms")),
)

# The names of the shared enrichment columns, for code that copies them between rows.
GEO_AND_AGENT_NAMES: tuple[str, ...] = tuple(c.name for c in _GEO_AND_AGENT)

EVENT_ARROW_SCHEMA = pa.schema([(c.name, c.arrow_type) for c in EVENT_COLUMNS])
PROFILE_ARROW_SCHEMA = pa.schema([(c.name, c.arrow_type) for c in (*PROFILE_COLUMNS, PROFILE_GROUPS)])
SESSION_ARROW_SCHEMA = pa.schema([(c.name, c.arrow_type) for c in SESSION_COLUMNS])
GROUP_ARROW_SCHEMA = pa.schema([(c.name, c.arrow_type) for c in GROUP_COLUMNS])
REPLAY_ARROW_SCHEMA = pa.schema([(c.name, c.arrow_type) for c in REPLAY_COLUMNS])

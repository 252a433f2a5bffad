"""The upstream ClickHouse (SPEC §10): client, OpenPanel-schema DDL, column check, inserts.

Input: `upstream.url` (`http://`, `https://`, or `chdb://PATH` for ClickHouse's embedded engine
through clickhouse-connect) and rows to insert with their deduplication token. Output: inserted
blocks, or an `UpstreamError` that says whether retrying can help: transport errors, timeouts
and 5xx can; a server that refuses the data (bad values, violated constraints) cannot, and the
job isolates the offending rows instead (as Vector's ClickHouse sink treats data errors).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

log = logging.getLogger(__name__)

# Inserts are synchronous, so a confirmed insert is in a part and its dedup token applies
# (chdb defaults to async_insert=1).
_INSERT_SETTINGS = {"async_insert": 0, "insert_deduplicate": 1}
DEDUPLICATION_WINDOW = 100_000
_TEXT = "LowCardinality(String)"
_GEO_AND_AGENT = [
    ("country", _TEXT), ("city", "String"), ("region", _TEXT), ("longitude", "Nullable(Float32)"),
    ("latitude", "Nullable(Float32)"), ("os", _TEXT), ("os_version", _TEXT), ("browser", _TEXT),
    ("browser_version", _TEXT), ("device", _TEXT), ("brand", _TEXT), ("model", _TEXT),
]

# OpenPanel's tables: columns (in insert order), engine, sort key.
TABLES: dict[str, tuple[list[tuple[str, str]], str, str]] = {
    "events": (
        [("id", "UUID"), ("name", _TEXT), ("sdk_name", _TEXT), ("sdk_version", _TEXT), ("device_id", "String"),
         ("profile_id", "String"), ("project_id", "String"), ("session_id", "String"), ("groups", "Array(String)"),
         ("path", "String"), ("origin", "String"), ("referrer", "String"), ("referrer_name", "String"),
         ("referrer_type", _TEXT), ("revenue", "UInt64"), ("duration", "UInt64"),
         ("properties", "Map(String, String)"), ("created_at", "DateTime64(3)"), *_GEO_AND_AGENT,
         ("imported_at", "Nullable(DateTime)")],
        "MergeTree", "(project_id, toDate(created_at), profile_id, name, created_at)",
    ),
    "sessions": (
        [("id", "String"), ("project_id", "String"), ("profile_id", "String"), ("device_id", "String"),
         ("created_at", "DateTime64(3)"), ("ended_at", "DateTime64(3)"), ("is_bounce", "Bool"),
         ("entry_origin", "String"), ("entry_path", "String"), ("exit_origin", "String"), ("exit_path", "String"),
         ("screen_view_count", "Int32"), ("revenue", "Float64"), ("event_count", "Int32"), ("duration", "UInt32"),
         *_GEO_AND_AGENT, ("utm_medium", "String"), ("utm_source", "String"), ("utm_campaign", "String"),
         ("utm_content", "String"), ("utm_term", "String"), ("referrer", "String"), ("referrer_name", "String"),
         ("referrer_type", _TEXT), ("groups", "Array(String)"), ("properties", "Map(String, String)"),
         ("sign", "Int8"), ("version", "UInt64")],
        "VersionedCollapsingMergeTree(sign, version)", "(project_id, id, toDate(created_at), profile_id)",
    ),
    "profiles": (
        [("id", "String"), ("is_external", "Bool"), ("first_name", "String"), ("last_name", "String"),
         ("email", "String"), ("avatar", "String"), ("properties", "Map(String, String)"), ("project_id", "String"),
         ("groups", "Array(String)"), ("created_at", "DateTime64(3)"), ("last_seen_at", "DateTime64(3)")],
        "ReplacingMergeTree(last_seen_at)", "(project_id, id)",
    ),
    "groups": (
        [("id", "String"), ("project_id", "String"), ("type", "String"), ("name", "String"),
         ("properties", "Map(String, String)"), ("created_at", "DateTime64(3)"), ("version", "UInt64"),
         ("deleted", "UInt8")],
        "ReplacingMergeTree(version, deleted)", "(project_id, id)",
    ),
    "session_replay_chunks": (
        [("project_id", "String"), ("session_id", "String"), ("started_at", "DateTime64(3)"),
         ("ended_at", "DateTime64(3)"), ("chunk_index", "UInt16"), ("is_full_snapshot", "Bool"),
         ("events_count", "UInt32"), ("payload", "String")],
        "MergeTree", "(project_id, session_id, chunk_index)",
    ),
}

_SERVER_ERROR_CODE = re.compile(r"Code: (\d+)")
# ClickHouse error codes that mean "this data is wrong", not "try again": type mismatches,
# unparseable values, violated constraints, too large values.
_DATA_ERROR_CODES = frozenset({6, 27, 32, 38, 41, 53, 69, 70, 72, 117, 130, 131, 190, 241, 252, 321, 469, 691})


class UpstreamError(Exception):
    """An upstream failure; `retryable` says whether sending the same rows again can help."""

    def __init__(self, message: str, *, retryable: bool, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        # The insert may have been committed although we got no confirmation (timeout, lost
        # response): reconcile by id before resending.
        self.ambiguous = ambiguous


def classify_error(exc: Exception) -> UpstreamError:
    """Map a clickhouse-connect (or transport) exception to retryable or permanent."""
    text = str(exc)
    match = _SERVER_ERROR_CODE.search(text)
    if match and int(match.group(1)) in _DATA_ERROR_CODES:
        return UpstreamError(text, retryable=False)
    ambiguous = isinstance(exc, OperationalError | TimeoutError | ConnectionError) or "timed out" in text.lower()
    return UpstreamError(text, retryable=True, ambiguous=ambiguous)


class Upstream:
    """One connection to the central ClickHouse."""

    def __init__(self, url: str, database: str, *, timeout_seconds: float = 30.0) -> None:
        self.url = url
        self.database = database
        self._client: Client = _connect(url, timeout_seconds)

    def close(self) -> None:
        self._client.close()

    def create_tables(self) -> list[str]:
        """Create the database and any missing table; returns the tables created."""
        self._client.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        existing = self._tables()
        created = []
        for table, (columns, engine, order_by) in TABLES.items():
            if table in existing:
                continue
            body = ", ".join(f"`{name}` {kind}" for name, kind in columns)
            self._client.command(
                f"CREATE TABLE {self.database}.{table} ({body}) ENGINE = {engine} ORDER BY {order_by} "
                f"SETTINGS non_replicated_deduplication_window = {DEDUPLICATION_WINDOW}"
            )
            created.append(table)
        return created

    def check_columns(self) -> list[str]:
        """Problems with existing tables (missing tables or columns, other types); [] when fine."""
        problems = []
        existing = self._tables()
        rows = self._client.query(
            "SELECT table, name, type FROM system.columns WHERE database = {db:String}",
            parameters={"db": self.database},
        ).result_rows
        actual: dict[str, dict[str, str]] = {}
        for table, name, kind in rows:
            actual.setdefault(table, {})[name] = kind
        for table, (columns, _engine, _order) in TABLES.items():
            if table not in existing:
                problems.append(f"{self.database}.{table}: missing (run `python -m appliance upstream-init`)")
                continue
            for name, kind in columns:
                found = actual[table].get(name)
                if found is None:
                    problems.append(f"{self.database}.{table}.{name}: missing column, expected {kind}")
                elif found != kind:
                    problems.append(f"{self.database}.{table}.{name}: type {found}, expected {kind}")
        return problems

    def insert(self, table: str, rows: Sequence[Sequence[Any]], token: str) -> None:
        """Insert one block with its deduplication token; raises UpstreamError."""
        columns = [name for name, _ in TABLES[table][0]]
        try:
            self._client.insert(f"{self.database}.{table}", list(rows), column_names=columns,
                                settings={**_INSERT_SETTINGS, "insert_deduplication_token": token})
        except (DatabaseError, OperationalError, OSError) as exc:
            raise classify_error(exc) from exc

    def insert_arrow(self, table: str, rows: Any, token: str) -> None:
        """Insert an Arrow table (columns named as upstream) with its deduplication token."""
        try:
            self._client.insert_arrow(f"{self.database}.{table}", rows,
                                      settings={**_INSERT_SETTINGS, "insert_deduplication_token": token})
        except (DatabaseError, OperationalError, OSError) as exc:
            raise classify_error(exc) from exc

    def existing_event_ids(self, ids: list[str]) -> set[str]:
        """Which of these event ids the upstream already holds (reconciliation after ambiguity)."""
        try:
            result = self._client.query(
                f"SELECT toString(id) FROM {self.database}.events WHERE id IN {{ids:Array(UUID)}}",  # noqa: S608
                parameters={"ids": ids},
            )
        except (DatabaseError, OperationalError, OSError) as exc:
            raise classify_error(exc) from exc
        return {row[0] for row in result.result_rows}

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a read query (status, tests)."""
        return [tuple(row) for row in self._client.query(sql).result_rows]

    def _tables(self) -> set[str]:
        rows = self._client.query(
            "SELECT name FROM system.tables WHERE database = {db:String}", parameters={"db": self.database}
        ).result_rows
        return {row[0] for row in rows}


def _connect(url: str, timeout_seconds: float) -> Client:
    if url.startswith("chdb://"):
        return clickhouse_connect.get_client(dsn=url)
    parts = urlsplit(url)
    return clickhouse_connect.get_client(
        host=parts.hostname or "localhost",
        port=parts.port or (8443 if parts.scheme == "https" else 8123),
        username=parts.username or "default",
        password=parts.password or "",
        secure=parts.scheme == "https",
        connect_timeout=min(timeout_seconds, 10),
        send_receive_timeout=timeout_seconds,
        autogenerate_session_id=False,
        query_retries=0,  # the sync job retries, with backoff and the same dedup token
    )

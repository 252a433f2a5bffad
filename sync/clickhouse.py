"""The upstream ClickHouse (docs/contract.md §10): client, OpenPanel-schema DDL, column check, inserts.

Input: `upstream.url` (`http://`, `https://`, or `chdb://PATH` for ClickHouse's embedded engine
through clickhouse-connect) and rows to insert with their deduplication token. Output: inserted
blocks, or an `UpstreamError` that says whether retrying can help: transport errors, timeouts
and 5xx can; a server that refuses the data (bad values, violated constraints) cannot, and the
job isolates the offending rows instead (as Vector's ClickHouse sink treats data errors).
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Mapping
from typing import IO, Any
from urllib.parse import urlsplit

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.binding import quote_identifier
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from sync import openpanel_schema
from sync.openpanel_schema import DEDUPLICATION_WINDOW
from sync.upstream_tables import KeyKind, UpstreamTable, describe_tables

log = logging.getLogger(__name__)

# Inserts are synchronous, so a confirmed insert is in a part and its dedup token applies
# (chdb defaults to async_insert=1).
_INSERT_SETTINGS = {"async_insert": 0, "insert_deduplicate": 1}
# Into a Distributed table the insert waits until the shards' (replicated) tables hold the
# block, so the dedup token reaches them and a confirmed insert means stored.
_DISTRIBUTED_INSERT_SETTINGS = {"insert_distributed_sync": 1}
_KEY_EXPRESSIONS: dict[KeyKind, str] = {
    "text": "toString({})", "integer": "toInt64({})", "time": "toUnixTimestamp64Milli(toDateTime64({}, 3))"}

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


class EncodedRows:
    """A block's rows in Arrow's file format, ready to send (`Upstream.encode`): as bytes for an
    HTTP upstream, in a temporary file for the embedded engine, which `close` removes."""

    def __init__(self, rows: pa.Table, *, data: bytes = b"", file: IO[bytes] | None = None) -> None:
        self.rows = rows
        self.data = data
        self.file = file

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class Upstream:
    """One connection to the central ClickHouse."""

    def __init__(self, url: str, database: str, *, timeout_seconds: float = 30.0) -> None:
        self.url = url
        self.database = database
        self._client: Client = _connect(url, timeout_seconds)

    def close(self) -> None:
        self._client.close()

    def create_tables(self, cluster: str = "") -> list[str]:
        """Create the database and OpenPanel's tables that are missing; returns the tables created."""
        self._client.command(openpanel_schema.create_database(self.database, cluster))
        existing = set(self.describe())
        created = []
        for table in openpanel_schema.TABLES:
            if table.name in existing:
                continue
            for statement in openpanel_schema.create_table(table, self.database, cluster):
                self._client.command(statement)
            created.append(table.name)
        return created

    def describe(self) -> dict[str, UpstreamTable]:
        """The upstream database's tables as they are: insertable columns, engine, dedup window."""
        try:
            tables = self._client.query(
                "SELECT name, engine, engine_full, create_table_query FROM system.tables WHERE database = {db:String}",
                parameters={"db": self.database}).result_rows
            columns = self._client.query(
                """SELECT table, name, type, default_kind FROM system.columns WHERE database = {db:String}
                   ORDER BY table, position""", parameters={"db": self.database}).result_rows
        except (DatabaseError, OperationalError, OSError) as exc:
            raise classify_error(exc) from exc
        return describe_tables(tables, columns)

    def set_deduplication_window(self, table: str) -> None:
        """Make the same insert token land once on a non-replicated MergeTree table."""
        try:
            self._client.command(f"ALTER TABLE {self.database}.{table} "
                                 f"MODIFY SETTING non_replicated_deduplication_window = {DEDUPLICATION_WINDOW}")
        except (DatabaseError, OperationalError, OSError) as exc:
            raise classify_error(exc) from exc

    def encode(self, rows: pa.Table) -> EncodedRows:
        """`rows` in Arrow's file format, as an insert with computed columns sends them: compressed
        as the client compresses (HTTP), or in a temporary file (the embedded engine reads no
        request body). Made apart from the insert so it can be made while another block is sent."""
        if not self.url.startswith("chdb://"):
            compression = self._client.write_compression
            block = pa.BufferOutputStream()
            _write_arrow_file(rows, block, compression if compression in ("zstd", "lz4") else None)
            return EncodedRows(rows, data=block.getvalue().to_pybytes())
        file = tempfile.NamedTemporaryFile(suffix=".arrow")  # noqa: SIM115 - EncodedRows.close removes it
        try:
            _write_arrow_file(rows, file, None)
            file.flush()
        except OSError as exc:  # a full temporary folder: the next pass tries again
            file.close()
            raise UpstreamError(f"cannot write the block to send: {exc}", retryable=True) from exc
        return EncodedRows(rows, file=file)

    def insert_arrow(self, table: str, rows: pa.Table | EncodedRows, token: str, *, distributed: bool = False,
                     read_as: Mapping[str, str] | None = None, computed: Mapping[str, str] | None = None) -> None:
        """Insert an Arrow table (columns named as upstream) as one block with its deduplication token.

        With `computed` (column → expression), the upstream makes those columns from what it
        reads: the block is read as `read_as` (column → type) by `input()` in an
        `INSERT … SELECT` (ClickHouse applies the token to it as to a plain insert). `rows` may
        come encoded already (`encode`); the caller closes what it encoded.
        """
        settings = {**_INSERT_SETTINGS, **(_DISTRIBUTED_INSERT_SETTINGS if distributed else {}),
                    "insert_deduplication_token": token}
        try:
            if not computed:
                plain = rows.rows if isinstance(rows, EncodedRows) else rows
                self._client.insert_arrow(f"{self.database}.{table}", plain, settings=settings)
            elif isinstance(rows, EncodedRows):
                self._insert_select(f"{self.database}.{table}", rows, settings, read_as or {}, computed)
            else:
                encoded = self.encode(rows)
                try:
                    self._insert_select(f"{self.database}.{table}", encoded, settings, read_as or {}, computed)
                finally:
                    encoded.close()
        except (DatabaseError, OperationalError, OSError) as exc:
            raise classify_error(exc) from exc

    def _insert_select(self, target: str, encoded: EncodedRows, settings: dict[str, Any], read_as: Mapping[str, str],
                       computed: Mapping[str, str]) -> None:
        names = encoded.rows.column_names
        columns = ", ".join(quote_identifier(name) for name in names)
        select = ", ".join(computed.get(name, quote_identifier(name)) for name in names)
        structure = quote_string(", ".join(f"{quote_identifier(name)} {read_as[name]}" for name in names))
        # Names and types are the upstream's own (system.columns), values are quoted.
        insert = f"INSERT INTO {target} ({columns}) SELECT {select}"
        if encoded.file is None:
            self._client.command(f"{insert} FROM input({structure}) FORMAT Arrow", data=encoded.data,
                                 settings=settings)
            return
        self._client.command(f"{insert} FROM file({quote_string(encoded.file.name)}, 'Arrow', {structure})",
                             settings=settings)

    def existing_keys(self, table: str, keys: list[tuple[str, KeyKind]], lookup: list[str], projects: list[str],
                      time_range: tuple[str, int, int] | None) -> set[tuple[Any, ...]]:
        """Key tuples of the `table` rows whose first key is in `lookup` (reconciling by id).

        `projects` and `time_range` (column, first and last epoch ms) narrow the search to the
        parts and granules of OpenPanel's sort keys and partitions, so a lookup in a large table
        reads little. Keys come back as text, integers, or epoch milliseconds (`KeyKind`),
        whatever the upstream column's exact type, so they compare with the gateway's own.
        """
        selected = ", ".join(_KEY_EXPRESSIONS[kind].format(name) for name, kind in keys)
        where = [f"toString({keys[0][0]}) IN {{lookup:Array(String)}}", "project_id IN {projects:Array(String)}"]
        parameters: dict[str, Any] = {"lookup": lookup, "projects": projects}
        if time_range is not None:
            column, first_ms, last_ms = time_range
            where.append(f"{column} BETWEEN fromUnixTimestamp64Milli({{first:Int64}}) "
                         f"AND fromUnixTimestamp64Milli({{last:Int64}})")
            parameters.update(first=first_ms, last=last_ms)
        try:
            result = self._client.query(
                f"SELECT DISTINCT {selected} FROM {self.database}.{table} "  # noqa: S608 - names from a fixed list
                f"WHERE {' AND '.join(where)}", parameters=parameters)
        except (DatabaseError, OperationalError, OSError) as exc:
            raise classify_error(exc) from exc
        return {tuple(row) for row in result.result_rows}

    def server_time_ms(self) -> int:
        """The upstream's clock (epoch ms): OpenPanel's export cursor runs on it, not on ours."""
        try:
            rows = self._client.query("SELECT toUnixTimestamp64Milli(now64(3))").result_rows
        except (DatabaseError, OperationalError, OSError) as exc:
            raise classify_error(exc) from exc
        return int(rows[0][0])

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a read query (status, tests)."""
        return [tuple(row) for row in self._client.query(sql).result_rows]

    def command(self, sql: str) -> None:
        """Run one statement (tests, fixtures)."""
        self._client.command(sql)


def _write_arrow_file(rows: pa.Table, sink: Any, compression: str | None) -> None:
    """`rows` in Arrow's IPC file format (ClickHouse's `Arrow`), its buffers compressed as the
    client compresses inserts (as clickhouse-connect's own `insert_arrow` does)."""
    options = pa.ipc.IpcWriteOptions(compression=compression) if compression else None
    with pa.ipc.new_file(sink, rows.schema, options=options) as writer:
        writer.write_table(rows)


def quote_string(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


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

"""The upstream ledger (docs/contract.md §10): which rows went up, in batches recorded before they are sent.

A batch is a table's rows after its watermark (the last seq of its last recorded batch), up to
`batch_rows`, recorded with the token `"{gateway_id}:{table}:{first}-{last}"` before the first
attempt. It stays `pending` until the server confirmed it; every retry sends exactly the same
rows with the same token. Mutable tables (sessions, profiles, groups) are snapshotted in the
same transaction that records the batch (`storage.upstream_rows`).

Two kinds of function, by where they run:
- reads (`newest_seqs`, `pending_batch`, `next_range`, `read_batch`, `backlog`) take a reader
  cursor of their own and may be long; they never hold the writer;
- writes (`record_batch`, `finish_batch`, `record_failure`) run on the writer thread, each one
  transaction of a few set-based statements (no loop over rows), so ingest commits never wait
  long behind them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from storage.store import Store
from storage.upstream_rows import (
    SNAPSHOTTED,
    TABLE_ORDER,
    batch_order,
    batch_parameters,
    batch_select,
    snapshot_insert,
    snapshot_table,
)

_ENCODE = msgspec.json.Encoder()
_QUARANTINE_SCHEMA = pa.schema([("table_name", pa.string()), ("seq", pa.int64()), ("error", pa.string()),
                                ("row", pa.string()), ("quarantined_at", pa.timestamp("ms"))])


@dataclass(frozen=True, slots=True)
class Batch:
    id: int
    table: str
    first_seq: int
    last_seq: int
    row_count: int
    token: str
    attempts: int
    ambiguous: bool


_BATCH_FIELDS = ("id", "first_seq", "last_seq", "row_count", "token", "attempts", "ambiguous")


@dataclass(frozen=True, slots=True)
class Refused:
    """A row the server refused (or that cannot take the upstream's type): quarantined."""
    seq: int
    error: str
    row: dict[str, Any]


# ---- reads (any thread, own cursor) ------------------------------------------------------------

def pending_batch(reader: duckdb.DuckDBPyConnection, table: str, after_id: int = 0) -> Batch | None:
    """The table's oldest recorded batch the server has not confirmed yet (recorded after batch
    `after_id`: the one in flight is pending too)."""
    row = reader.execute(
        """SELECT id, first_seq, last_seq, row_count, token, attempts, ambiguous FROM sync_batches
           WHERE table_name = ? AND status = 'pending' AND id > ? ORDER BY id LIMIT 1""", [table, after_id]).fetchall()
    # fetchall, not fetchone: a cursor with an unfinished result refuses the next statement.
    return Batch(table=table, **dict(zip(_BATCH_FIELDS, row[0], strict=True))) if row else None


def newest_seqs(reader: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Per table, the newest seq stored now (0 when empty): where a sync pass that begins now ends."""
    return {table: int(reader.execute(f"SELECT coalesce(max(seq), 0) FROM {table}").fetchall()[0][0])  # noqa: S608
            for table in TABLE_ORDER}


def next_range(reader: duckdb.DuckDBPyConnection, table: str, batch_rows: int,
               until_seq: int) -> tuple[int, int] | None:
    """The seq range of the next batch to record (at most `batch_rows` rows, none past
    `until_seq`), or None."""
    row = reader.execute(
        f"""SELECT min(seq), max(seq) FROM (
              SELECT seq FROM {table} WHERE seq > (SELECT coalesce(max(last_seq), 0) FROM sync_batches
                                                   WHERE table_name = ?) AND seq <= ?
              ORDER BY seq LIMIT ?)""", [table, until_seq, batch_rows]).fetchall()  # noqa: S608 - table from TABLE_ORDER
    first, last = row[0]
    return (int(first), int(last)) if first is not None else None


def read_batch(reader: duckdb.DuckDBPyConnection, batch: Batch) -> pa.Table:
    """The batch's canonical upstream rows as Arrow, with the local `seq` first."""
    parameters = batch_parameters(batch.table, batch_id=batch.id, first=batch.first_seq, last=batch.last_seq)
    rows = reader.sql(batch_select(batch.table), params=parameters).to_arrow_table()
    order = pc.sort_indices(rows, sort_keys=batch_order(batch.table))
    if np.array_equal(order.to_numpy(), np.arange(len(order))):
        return rows  # already in order (the usual case): no copy
    return rows.take(order)


def backlog(reader: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """Per table: rows not yet confirmed upstream, and when its oldest pending batch was recorded."""
    out = {}
    for table in TABLE_ORDER:
        row = reader.execute(
            f"""SELECT count(*) FROM {table} WHERE seq > (
                  SELECT coalesce(max(last_seq), 0) FROM sync_batches WHERE table_name = ? AND status = 'done')""",  # noqa: S608
            [table]).fetchall()
        oldest = reader.execute(
            "SELECT min(created_at) FROM sync_batches WHERE table_name = ? AND status = 'pending'", [table]).fetchall()
        out[table] = {"rows": int(row[0][0]), "oldest_pending_batch": str(oldest[0][0]) if oldest[0][0] else None}
    return out


# ---- writes (writer thread, one transaction each) ---------------------------------------------

def record_batch(store: Store, table: str, first: int, last: int, gateway_id: str, now_ms: int) -> Batch:
    """Record seq `first`..`last` of `table` as the next batch (and snapshot it, if mutable)."""
    connection = store.connection
    with _transaction(connection):
        batch_id = _scalar(connection, "SELECT coalesce(max(id), 0) + 1 FROM sync_batches")
        if table in SNAPSHOTTED:
            connection.execute(snapshot_insert(table),
                               {"batch": batch_id, "first": first, "last": last})
            # Rows changed since the range was read have moved past `last`: a later batch has them.
            row_count = _scalar(connection, f"SELECT count(DISTINCT seq) FROM {snapshot_table(table)} "  # noqa: S608
                                            "WHERE batch_id = ?", [batch_id])
        else:
            row_count = _scalar(connection, f"SELECT count(*) FROM {table} WHERE seq BETWEEN ? AND ?",  # noqa: S608
                                [first, last])
        token = f"{gateway_id}:{table}:{first}-{last}"
        connection.execute(
            """INSERT INTO sync_batches (id, table_name, first_seq, last_seq, row_count, token, status, created_at)
               VALUES (?, ?, ?, ?, ?, ?, 'pending', epoch_ms(?::BIGINT))""",
            [batch_id, table, first, last, row_count, token, now_ms])
    return Batch(batch_id, table, first, last, row_count, token, 0, False)


def finish_batch(store: Store, batch: Batch, refused: list[Refused], now_ms: int) -> None:
    """The server confirmed the batch: quarantine what it refused and mark the rest sent, at once.

    One transaction, so a crash can neither lose the quarantine nor quarantine twice (the batch
    stays pending, and its retry splits the same way and is refused the same way).
    """
    connection = store.connection
    with _transaction(connection):
        if refused:
            rows = pa.table({
                "table_name": [batch.table] * len(refused), "seq": [r.seq for r in refused],
                "error": [r.error[:2000] for r in refused],
                "row": [_ENCODE.encode(r.row).decode() for r in refused],
                "quarantined_at": pa.array([now_ms] * len(refused), pa.int64()).cast(pa.timestamp("ms")),
            }, schema=_QUARANTINE_SCHEMA)
            connection.register("refused_rows", rows)
            try:
                connection.execute("INSERT INTO sync_quarantine SELECT * FROM refused_rows")
            finally:
                connection.unregister("refused_rows")
        connection.execute(
            "UPDATE sync_batches SET status = 'done', done_at = epoch_ms(?::BIGINT) WHERE id = ?", [now_ms, batch.id])
        if batch.table == "sessions":
            connection.execute(
                """DELETE FROM sync_upstream_sessions WHERE id IN (
                     SELECT id FROM sync_snapshot_sessions WHERE batch_id = ? AND sign = 1)""", [batch.id])
            connection.execute(
                """INSERT INTO sync_upstream_sessions
                   SELECT * EXCLUDE (batch_id, seq) FROM sync_snapshot_sessions WHERE batch_id = ? AND sign = 1""",
                [batch.id])
        if batch.table in SNAPSHOTTED:
            connection.execute(f"DELETE FROM {snapshot_table(batch.table)} WHERE batch_id = ?", [batch.id])  # noqa: S608


def record_failure(store: Store, batch: Batch, error: str, ambiguous: bool) -> None:
    """A retryable failure: count it; an ambiguous one makes the next attempt reconcile first."""
    store.connection.execute(
        "UPDATE sync_batches SET attempts = attempts + 1, last_error = ?, ambiguous = ambiguous OR ? WHERE id = ?",
        [error[:2000], ambiguous, batch.id])


@contextlib.contextmanager
def _transaction(connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
    connection.execute("BEGIN")
    try:
        yield
    except BaseException:
        # After a failed COMMIT there is no transaction left to roll back; the first error is the one to raise.
        with contextlib.suppress(duckdb.Error):
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _scalar(connection: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> int:
    rows = connection.execute(sql, params or []).fetchall()
    return int(rows[0][0])


def status(reader: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Backlog per table, quarantined rows and open sessions, for `/admin/status` and the CLI."""
    return {"backlog": backlog(reader),
            "open_sessions": _scalar(reader, "SELECT count(*) FROM sessions WHERE NOT closed"),
            "quarantined_rows": _scalar(reader, "SELECT count(*) FROM sync_quarantine")}

"""The upstream ledger (SPEC §10), in the gateway's DuckDB; these functions run on the writer thread.

A batch is a table's rows after its watermark (the last seq of its last recorded batch), up to
`batch_rows`, recorded with the token `"{gateway_id}:{table}:{first}-{last}"` before the first
attempt. It stays `pending` until the server confirmed it; every retry sends exactly the same
rows with the same token, so ClickHouse drops a block it already has. Rows of mutable tables are
snapshotted in the batch, because their local row may change (and move to a later seq) meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import msgspec

from storage.store import Store
from sync import rows as upstream_rows

TABLE_ORDER = ("events", "sessions", "profiles", "groups", "session_replay_chunks")
_SNAPSHOTTED = frozenset({"sessions", "profiles", "groups"})
_ENCODE = msgspec.json.Encoder()
_DECODE = msgspec.json.Decoder()


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
    snapshot: list[dict[str, Any]] | None  # rows to send, for mutable tables


def next_batch(store: Store, table: str, batch_rows: int, gateway_id: str, now_ms: int) -> Batch | None:
    """The table's pending batch, else a newly recorded one, else None (nothing to send)."""
    connection = store.connection
    pending = connection.execute(
        """SELECT id, first_seq, last_seq, row_count, token, attempts, ambiguous, payload FROM sync_batches
           WHERE table_name = ? AND status = 'pending' ORDER BY id LIMIT 1""", [table]).fetchone()
    if pending is not None:
        snapshot = _DECODE.decode(pending[7]) if pending[7] else None
        return Batch(pending[0], table, pending[1], pending[2], pending[3], pending[4], pending[5], pending[6],
                     snapshot)
    watermark = connection.execute(
        "SELECT coalesce(max(last_seq), 0) FROM sync_batches WHERE table_name = ?", [table]).fetchone()
    assert watermark is not None
    cursor = connection.execute(
        f"SELECT * FROM {table} WHERE seq > ? ORDER BY seq LIMIT ?",  # noqa: S608 - table from TABLE_ORDER
        [watermark[0], batch_rows]) if table in _SNAPSHOTTED else connection.execute(
        f"SELECT seq FROM {table} WHERE seq > ? ORDER BY seq LIMIT ?", [watermark[0], batch_rows])  # noqa: S608
    names = [d[0] for d in cursor.description or []]
    local = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    if not local:
        return None
    first, last = int(local[0]["seq"]), int(local[-1]["seq"])
    snapshot = _snapshot(store, table, local, gateway_id) if table in _SNAPSHOTTED else None
    token = f"{gateway_id}:{table}:{first}-{last}"
    next_id = connection.execute("SELECT coalesce(max(id), 0) + 1 FROM sync_batches").fetchone()
    assert next_id is not None
    connection.execute(
        """INSERT INTO sync_batches (id, table_name, first_seq, last_seq, row_count, token, payload, status,
                                     created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', epoch_ms(?::BIGINT))""",
        [next_id[0], table, first, last, len(local), token,
         _ENCODE.encode(snapshot).decode() if snapshot is not None else None, now_ms])
    return Batch(next_id[0], table, first, last, len(local), token, 0, False, snapshot)


def _snapshot(store: Store, table: str, local: list[dict[str, Any]], gateway_id: str) -> list[dict[str, Any]]:
    if table == "profiles":
        return [upstream_rows.profile_row(row, gateway_id) for row in local]
    if table == "groups":
        return [upstream_rows.group_row(row, gateway_id) for row in local]
    held = dict(store.connection.execute(
        "SELECT id, row FROM sync_sent_sessions WHERE id IN (SELECT unnest(?::VARCHAR[]))",
        [[row["id"] for row in local]]).fetchall())
    out: list[dict[str, Any]] = []
    for row in local:
        out.extend(upstream_rows.session_rows(row, gateway_id, _DECODE.decode(held[row["id"]]) if row["id"] in held
                                              else None))
    return out


def mark_done(store: Store, batch: Batch, now_ms: int) -> None:
    """The server confirmed the batch: it will never be sent again."""
    connection = store.connection
    connection.execute("BEGIN")
    try:
        connection.execute(
            "UPDATE sync_batches SET status = 'done', done_at = epoch_ms(?::BIGINT), payload = NULL WHERE id = ?",
            [now_ms, batch.id])
        if batch.table == "sessions" and batch.snapshot:
            for row in batch.snapshot:
                if row["sign"] == 1:
                    connection.execute("INSERT OR REPLACE INTO sync_sent_sessions VALUES (?, ?)",
                                       [row["id"], _ENCODE.encode(row).decode()])
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def record_failure(store: Store, batch: Batch, error: str, ambiguous: bool) -> None:
    """A retryable failure: count it; an ambiguous one makes the next attempt reconcile first."""
    store.connection.execute(
        "UPDATE sync_batches SET attempts = attempts + 1, last_error = ?, ambiguous = ambiguous OR ? WHERE id = ?",
        [error[:2000], ambiguous, batch.id])


def quarantine(store: Store, table: str, refused: list[tuple[int, str, Any]], now_ms: int) -> None:
    """Rows the server refuses: kept locally with its message, never blocking the rest."""
    for seq, error, row in refused:
        store.connection.execute(
            "INSERT INTO sync_quarantine VALUES (?, ?, ?, ?, epoch_ms(?::BIGINT))",
            [table, seq, error[:2000], _ENCODE.encode(row).decode(), now_ms])


def backlog(connection: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """Per table: rows not yet confirmed upstream, and when its oldest pending batch was recorded."""
    out = {}
    for table in TABLE_ORDER:
        watermark = connection.execute(
            "SELECT coalesce(max(last_seq), 0) FROM sync_batches WHERE table_name = ? AND status = 'done'",
            [table]).fetchone()
        assert watermark is not None
        row = connection.execute(f"SELECT count(*) FROM {table} WHERE seq > ?", [watermark[0]]).fetchone()  # noqa: S608
        pending = connection.execute(
            "SELECT min(created_at) FROM sync_batches WHERE table_name = ? AND status = 'pending'", [table]).fetchone()
        out[table] = {"rows": int(row[0]) if row else 0,
                      "oldest_pending_batch": str(pending[0]) if pending and pending[0] else None}
    return out

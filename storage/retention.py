"""Retention (docs/contract.md §8): delete rows already forwarded upstream and older than `retention_days`.

Runs daily. "Forwarded" means covered by the ledger's confirmed batches up to the first
unconfirmed one: a row after a pending batch is kept, however old, so nothing that upstream
lacks is ever deleted. Without an upstream nothing is ever forwarded, so nothing is deleted (the
disk cap then stops intake before the disk fills, docs/contract.md §9).

The deletes run on the writer in slices of `_SLICE_ROWS` seqs, one statement each, so a day's
worth of rows never holds the writer (and the requests behind it) for long.
"""

from __future__ import annotations

import functools

import duckdb

from storage.store import Store
from storage.writer import StorageWriter

# table → the column that says when a row last arrived, and an extra condition for deletion.
_RETAINED = {
    "events": ("received_at", "true"),
    "sessions": ("last_received_at", "closed"),
    "session_replay_chunks": ("received_at", "true"),
}
_SLICE_ROWS = 20_000


def forwarded_through(connection: duckdb.DuckDBPyConnection, table: str) -> int:
    """The highest seq of `table` such that every row up to it is confirmed upstream."""
    row = connection.execute(
        """SELECT least(coalesce(min(first_seq) FILTER (WHERE status = 'pending') - 1,
                                 max(last_seq) FILTER (WHERE status = 'done'), 0),
                        coalesce(max(last_seq) FILTER (WHERE status = 'done'), 0))
           FROM sync_batches WHERE table_name = ?""", [table]).fetchall()
    return int(row[0][0])


def _delete_slice(store: Store, table: str, low: int, high: int, cutoff_ms: int) -> int:
    arrived, condition = _RETAINED[table]
    row = store.connection.execute(
        f"DELETE FROM {table} WHERE seq BETWEEN ? AND ? AND {arrived} < epoch_ms(?::BIGINT) AND {condition}",  # noqa: S608
        [low, high, cutoff_ms]).fetchall()
    return int(row[0][0]) if row else 0


def _forget_deleted_sessions(store: Store) -> None:
    # What upstream holds of a session is only needed while the session can still change.
    store.connection.execute("DELETE FROM sync_upstream_sessions WHERE id NOT IN (SELECT id FROM sessions)")


async def delete_forwarded(writer: StorageWriter, now_ms: int, retention_days: int) -> dict[str, int]:
    """Delete old forwarded rows, slice by slice on the writer; returns how many per table."""
    cutoff_ms = now_ms - retention_days * 86_400_000
    reader = writer.reader()
    try:
        ranges = {}
        for table, (arrived, _condition) in _RETAINED.items():
            row = reader.execute(
                f"SELECT min(seq), max(seq) FROM {table} WHERE {arrived} < epoch_ms(?::BIGINT)",  # noqa: S608
                [cutoff_ms]).fetchall()
            first, last = row[0]
            if first is not None:
                ranges[table] = (int(first), min(int(last), forwarded_through(reader, table)))
    finally:
        reader.close()
    deleted = dict.fromkeys(_RETAINED, 0)
    for table, (low, through) in ranges.items():
        for start in range(low, through + 1, _SLICE_ROWS):
            end = min(start + _SLICE_ROWS - 1, through)
            deleted[table] += await writer.call(functools.partial(_delete_slice, table=table, low=start, high=end,
                                                                  cutoff_ms=cutoff_ms))
    if deleted["sessions"]:
        await writer.call(_forget_deleted_sessions)
    return deleted

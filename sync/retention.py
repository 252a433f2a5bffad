"""Retention (SPEC §8): delete rows already forwarded upstream and older than `retention_days`.

Runs daily on the writer thread. "Forwarded" means covered by the ledger's confirmed batches up
to the first unconfirmed one: a row after a pending batch is kept, however old, so nothing that
upstream lacks is ever deleted. Without an upstream nothing is ever forwarded, so nothing is
deleted (the disk cap then stops intake before the disk fills, SPEC §9).
"""

from __future__ import annotations

import duckdb

from storage.store import Store

# table → the column that says when a row last arrived, and an extra condition for deletion.
_RETAINED = {
    "events": ("received_at", "true"),
    "sessions": ("last_received_at", "closed"),
    "session_replay_chunks": ("received_at", "true"),
}


def forwarded_through(connection: duckdb.DuckDBPyConnection, table: str) -> int:
    """The highest seq of `table` such that every row up to it is confirmed upstream."""
    row = connection.execute(
        """SELECT coalesce(min(first_seq) FILTER (WHERE status = 'pending') - 1,
                           max(last_seq) FILTER (WHERE status = 'done'), 0)
           FROM sync_batches WHERE table_name = ?""", [table]).fetchone()
    done = connection.execute(
        "SELECT coalesce(max(last_seq), 0) FROM sync_batches WHERE table_name = ? AND status = 'done'",
        [table]).fetchone()
    assert row is not None and done is not None
    return min(int(row[0]), int(done[0]))


def delete_forwarded(store: Store, now_ms: int, retention_days: int) -> dict[str, int]:
    """Delete old forwarded rows; returns how many per table."""
    cutoff_ms = now_ms - retention_days * 86_400_000
    deleted = {}
    for table, (arrived, condition) in _RETAINED.items():
        through = forwarded_through(store.connection, table)
        row = store.connection.execute(
            f"""DELETE FROM {table} WHERE seq <= ? AND {arrived} < epoch_ms(?::BIGINT) AND {condition}""",  # noqa: S608
            [through, cutoff_ms]).fetchone()
        deleted[table] = int(row[0]) if row else 0
    # What upstream holds of a session is only needed while the session can still change.
    store.connection.execute("DELETE FROM sync_sent_sessions WHERE id NOT IN (SELECT id FROM sessions)")
    return deleted

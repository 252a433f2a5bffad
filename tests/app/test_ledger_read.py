"""A batch reads back in `seq` order, a session's cancel row before its new version, even when
the store returns its rows in another order (`storage.ledger.read_batch` sorts outside DuckDB,
so a batch never has to fit in DuckDB's `memory_limit`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import ledger
from storage.database import open_database


def test_a_snapshot_inserted_out_of_order_reads_back_by_seq_then_sign(tmp_path: Path) -> None:
    connection = open_database(str(tmp_path / "gateway.duckdb"), "64MB")
    inserted = [(7, 1, "c"), (3, 1, "a"), (7, -1, "c"), (5, 1, "b"), (3, -1, "a")]
    for seq, sign, session in inserted:
        connection.execute("INSERT INTO sync_snapshot_sessions BY NAME SELECT 1 AS batch_id, ? AS seq, ? AS sign, "
                           "? AS id, 'demo' AS project_id", [seq, sign, session])
    batch = ledger.Batch(id=1, table="sessions", first_seq=3, last_seq=7, row_count=len(inserted), token="t",
                         attempts=0, ambiguous=False)

    rows = ledger.read_batch(connection, batch).select(["seq", "sign", "id"]).to_pylist()

    assert [(r["seq"], r["sign"], r["id"]) for r in rows] == [
        (3, -1, "a"), (3, 1, "a"), (5, 1, "b"), (7, -1, "c"), (7, 1, "c")]


@pytest.mark.parametrize("table", ["profiles", "events"])
def test_a_batch_of_any_table_reads_back_in_seq_order(tmp_path: Path, table: str) -> None:
    connection = open_database(str(tmp_path / "gateway.duckdb"), "64MB")
    if table == "profiles":
        for seq in (4, 9, 2):  # a snapshot's rows may be stored in any order
            connection.execute("INSERT INTO sync_snapshot_profiles BY NAME SELECT 1 AS batch_id, ? AS seq, "
                               "'p' || ? AS id, 'demo' AS project_id", [seq, seq])
        expected = [2, 4, 9]
    else:
        connection.execute("INSERT INTO events BY NAME SELECT range AS seq, uuid() AS id, 'demo' AS project_id, "
                           "'view' AS name, now() AS created_at, now() AS received_at FROM range(1, 6)")
        expected = [1, 2, 3, 4, 5]
    batch = ledger.Batch(id=1, table=table, first_seq=min(expected), last_seq=max(expected),
                         row_count=len(expected), token="t", attempts=0, ambiguous=False)

    assert ledger.read_batch(connection, batch).column("seq").to_pylist() == expected

"""How the store file is opened (`storage.database.open_database`): its row groups stay at
`ROW_GROUP_SIZE` rows on every open, so a checkpoint never rewrites more than that of a table's
last, partly filled group; readers see the store as their default database."""

from __future__ import annotations

from pathlib import Path

import duckdb

from storage.database import ROW_GROUP_SIZE, open_database, use_store

_APPEND_EVENTS = ("INSERT INTO events BY NAME SELECT $first + range AS seq, uuid() AS id, 'demo' AS project_id, "
                  "'view' AS name, now() AS created_at, now() AS received_at FROM range($count)")


def _rows_per_group(connection: duckdb.DuckDBPyConnection) -> list[int]:
    rows = connection.execute(
        "SELECT row_group_id, sum(count) FROM pragma_storage_info('events') "
        "WHERE column_name = 'seq' AND column_path = '[0]' GROUP BY row_group_id ORDER BY row_group_id").fetchall()
    return [int(count) for _, count in rows]


def test_row_groups_hold_row_group_size_rows_across_reopens(tmp_path: Path) -> None:
    path = str(tmp_path / "gateway.duckdb")
    connection = open_database(path, "64MB")
    connection.execute(_APPEND_EVENTS, {"first": 1, "count": ROW_GROUP_SIZE + 1000})
    connection.execute("CHECKPOINT")
    connection.close()

    # A plain open would append with DuckDB's own 122,880 rows per group (the size is not kept
    # in the file): the gateway's reopen must set it again.
    connection = open_database(path, "64MB")
    connection.execute(_APPEND_EVENTS, {"first": ROW_GROUP_SIZE + 1001, "count": 2 * ROW_GROUP_SIZE})
    connection.execute("CHECKPOINT")

    per_group = _rows_per_group(connection)
    assert sum(per_group) == 3 * ROW_GROUP_SIZE + 1000
    assert max(per_group) == ROW_GROUP_SIZE and len(per_group) == 4
    connection.close()


def test_a_cursor_made_a_reader_sees_the_store(tmp_path: Path) -> None:
    connection = open_database(str(tmp_path / "gateway.duckdb"), "64MB")
    connection.execute(_APPEND_EVENTS, {"first": 1, "count": 5})

    reader = connection.cursor()
    use_store(reader)

    assert reader.execute("SELECT count(*) FROM events").fetchall() == [(5,)]
    spills = reader.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
    assert spills == str(tmp_path / "gateway.duckdb.tmp")

"""How the store file is opened and kept (`storage.database`): its row groups stay at
`ROW_GROUP_SIZE` rows on every open; scheduled checkpoints leave partly filled row groups and
deleted rows where they are (cheap), the daily compaction merges and reclaims them; readers see
the store as their default database."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from litestar.testing import TestClient

from appliance.app import create_app
from appliance.settings import load_settings
from storage.database import ROW_GROUP_SIZE, compact, open_database, use_store
from tests.helpers import write_config

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


def _blocks(connection: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    row = connection.execute("SELECT free_blocks, total_blocks FROM pragma_database_size() "
                             "WHERE database_name = current_database()").fetchall()[0]
    return int(row[0]), int(row[1])


def test_checkpoints_leave_groups_alone_and_compaction_merges_them(tmp_path: Path) -> None:
    connection = open_database(str(tmp_path / "gateway.duckdb"), "64MB")
    part = ROW_GROUP_SIZE // 4
    for n in range(8):  # as scheduled checkpoints between commits leave them: a partly filled group each
        connection.execute(_APPEND_EVENTS, {"first": 1 + n * part, "count": part})
        connection.execute("CHECKPOINT")
    assert _rows_per_group(connection) == [part] * 8

    # Rows rewritten elsewhere (as a session's row is on every commit that touches it).
    connection.execute("DELETE FROM events WHERE seq % 4 <> 0")
    connection.execute("CHECKPOINT")
    assert _rows_per_group(connection) == [part] * 8  # the deleted rows still take their place

    compact(connection)

    per_group = _rows_per_group(connection)
    assert sum(per_group) == 2 * part and len(per_group) == 1
    assert connection.execute("SELECT current_setting('max_vacuum_tasks')").fetchall() == [(0,)]
    connection.close()


def test_a_group_whose_rows_are_all_deleted_is_dropped_without_compaction(tmp_path: Path) -> None:
    connection = open_database(str(tmp_path / "gateway.duckdb"), "64MB")
    for n in range(4):
        connection.execute(_APPEND_EVENTS, {"first": 1 + n * ROW_GROUP_SIZE, "count": ROW_GROUP_SIZE})
        connection.execute("CHECKPOINT")
    free_before, _ = _blocks(connection)

    connection.execute("DELETE FROM events WHERE seq <= $last", {"last": 2 * ROW_GROUP_SIZE})  # as retention does
    connection.execute("CHECKPOINT")

    assert _rows_per_group(connection) == [ROW_GROUP_SIZE] * 2
    assert _blocks(connection)[0] > free_before  # their blocks are free for new rows
    connection.close()


@pytest.mark.parametrize("configured", [None, 3])
def test_the_gateway_opens_its_store_with_the_configured_duckdb_threads(tmp_path: Path, configured: int | None) -> None:
    """`storage.threads` (one by default) is what DuckDB runs the gateway's statements with."""
    storage = {} if configured is None else {"threads": configured}
    with TestClient(app=create_app(load_settings(write_config(tmp_path, storage=storage)))) as client:
        reader = client.app.state.gateway.writer.reader()
        try:
            assert reader.execute("SELECT current_setting('threads')").fetchall() == [(configured or 1,)]
        finally:
            reader.close()

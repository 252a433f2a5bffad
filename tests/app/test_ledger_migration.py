"""A gateway upgraded with batches still pending keeps sending exactly the same rows.

The earlier ledger kept each pending batch of sessions, profiles and groups as one JSON payload
(times in epoch ms) and what upstream holds of each session as JSON. Migration 4 carries both
into typed tables; a pending batch then reads back as the rows its first attempt sent.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import msgspec

from storage import ledger
from storage.database import migrate
from storage.migrations import MIGRATIONS
from storage.schema import JSON_TEXT_COMPRESSION, SESSION_COLUMNS, without_json_text_compression

_T0 = 1_780_920_000_123  # epoch ms


def _session(version: int, sign: int, event_count: int) -> dict[str, object]:
    geo_agent = dict.fromkeys(("country", "city", "region", "os", "os_version", "browser", "browser_version",
                               "device", "brand", "model"), "")
    return {"id": "s1", "project_id": "demo", "profile_id": "d1", "device_id": "d1", "created_at": _T0,
            "ended_at": _T0 + 5000, "is_bounce": False, "entry_origin": "", "entry_path": "/a", "exit_origin": "",
            "exit_path": "/b", "screen_view_count": 2, "revenue": 0.0, "event_count": event_count, "duration": 5000,
            **geo_agent, "longitude": None, "latitude": None, "utm_medium": "", "utm_source": "", "utm_campaign": "",
            "utm_content": "", "utm_term": "", "referrer": "", "referrer_name": "", "referrer_type": "",
            "groups": ["g1"], "properties": {"__gateway": "site-01"}, "sign": sign, "version": version}


def _migrated_to(path: Path, version: int) -> duckdb.DuckDBPyConnection:
    """A store as a release with the first `version` migrations left it (releases before
    migration 7 made every column without a chosen compression)."""
    connection = duckdb.connect(str(path))
    connection.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)")
    for applied, statements in enumerate(MIGRATIONS[:version], start=1):
        for statement in statements:
            if version < 7:
                statement = without_json_text_compression(statement)
            connection.execute(statement)
        connection.execute("INSERT INTO schema_migrations VALUES (?, now()::TIMESTAMP)", [applied])
    return connection


def test_pending_json_batches_become_typed_snapshots(tmp_path: Path) -> None:
    connection = _migrated_to(tmp_path / "old.duckdb", 3)
    held, cancel, new = _session(7, 1, 3), _session(7, -1, 3), _session(12, 1, 4)
    profile = {"id": "u1", "is_external": True, "first_name": "Ada", "last_name": "", "email": "", "avatar": "",
               "properties": {"plan": "pro", "__gateway": "site-01"}, "project_id": "demo", "groups": [],
               "created_at": _T0, "last_seen_at": _T0 + 1}
    connection.execute("INSERT INTO sync_sent_sessions VALUES ('s1', ?)", [msgspec.json.encode(held).decode()])
    for batch_id, table, payload in ((1, "sessions", [cancel, new]), (2, "profiles", [profile])):
        connection.execute(
            "INSERT INTO sync_batches (id, table_name, first_seq, last_seq, row_count, token, payload, status, "
            "created_at) VALUES (?, ?, 12, 12, 1, ?, ?, 'pending', now()::TIMESTAMP)",
            [batch_id, table, f"site-01:{table}:12-12", msgspec.json.encode(payload).decode()])

    migrate(connection)
    reader = connection.cursor()

    sessions = ledger.read_batch(reader, ledger.pending_batch(reader, "sessions")).to_pylist()
    assert [(row["seq"], row["sign"], row["version"], row["event_count"]) for row in sessions] == [
        (12, -1, 7, 3), (12, 1, 12, 4)]
    assert sessions[0]["created_at"] == dt.datetime(2026, 6, 8, 12, 0, 0, 123000)
    assert sessions[0]["groups"] == ["g1"] and sessions[0]["longitude"] is None
    profiles = ledger.read_batch(reader, ledger.pending_batch(reader, "profiles")).to_pylist()
    # Properties are read as JSON text; the upstream makes them a map (storage/upstream_rows.py).
    assert [(row["id"], row["first_name"], json.loads(row["properties"])) for row in profiles] == [
        ("u1", "Ada", {"plan": "pro", "__gateway": "site-01"})]
    assert reader.execute("SELECT id, version, event_count FROM sync_upstream_sessions").fetchall() == [("s1", 7, 3)]
    assert reader.execute("SELECT count(*) FROM sync_batches WHERE payload IS NOT NULL").fetchone() == (0,)
    assert ledger.pending_batch(reader, "sessions").token == "site-01:sessions:12-12"  # the same token again


def test_sessions_lose_their_in_memory_key_and_keep_their_rows_in_seq_order(tmp_path: Path) -> None:
    """Migration 5: `sessions` and `sync_upstream_sessions` as shipped before it (with a primary
    key on `id`) are rebuilt without it, every row kept, sessions in `seq` order."""
    connection = _migrated_to(tmp_path / "keyed.duckdb", 4)
    # As the earlier releases made them: the same columns, with the key.
    connection.execute("DROP TABLE sessions")
    connection.execute("CREATE TABLE sessions ({}, PRIMARY KEY (id))".format(
        ", ".join(f"{c.name} {c.sql_type}" for c in SESSION_COLUMNS)))
    connection.execute("ALTER TABLE sync_upstream_sessions ADD PRIMARY KEY (id)")
    for seq, session_id in ((3, "s3"), (1, "s1"), (2, "s2")):
        connection.execute("INSERT INTO sessions (seq, id, created_at, ended_at, is_live, last_received_at) "
                           "VALUES (?, ?, now()::TIMESTAMP, now()::TIMESTAMP, false, now()::TIMESTAMP)",
                           [seq, session_id])
    connection.execute("INSERT INTO sync_upstream_sessions (id, version, sign) VALUES ('s1', 1, 1)")
    assert connection.execute("SELECT count(*) FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' "
                              "AND table_name IN ('sessions', 'sync_upstream_sessions')").fetchone() == (2,)

    migrate(connection)

    assert connection.execute("SELECT count(*) FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' "
                              "AND table_name IN ('sessions', 'sync_upstream_sessions')").fetchone() == (0,)
    assert connection.execute("SELECT seq, id FROM sessions").fetchall() == [(1, "s1"), (2, "s2"), (3, "s3")]
    assert connection.execute("SELECT id, version FROM sync_upstream_sessions").fetchall() == [("s1", 1)]
    assert connection.execute("SELECT max(version) FROM schema_migrations").fetchone() == (len(MIGRATIONS),)


def test_profiles_lose_their_in_memory_key_and_keep_their_rows_in_seq_order(tmp_path: Path) -> None:
    """Migration 6: `profiles` as every earlier release made it (keyed on project and id) is
    rebuilt without the key, every column of every row kept, in `seq` order."""
    connection = _migrated_to(tmp_path / "keyed.duckdb", 5)
    for seq, profile_id in ((3, "u3"), (1, "u1"), (2, "u2")):
        connection.execute(
            "INSERT INTO profiles (seq, project_id, id, first_name, properties, is_external, created_at, updated_at, "
            "groups) VALUES (?, 'demo', ?, 'Ada', '{\"plan\":\"pro\"}', false, epoch_ms(?::BIGINT), "
            "epoch_ms(?::BIGINT), ['g1'])", [seq, profile_id, _T0, _T0 + seq])
    assert connection.execute("SELECT count(*) FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' "
                              "AND table_name = 'profiles'").fetchone() == (1,)

    migrate(connection)

    assert connection.execute("SELECT count(*) FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' "
                              "AND table_name = 'profiles'").fetchone() == (0,)
    assert connection.execute(
        "SELECT seq, id, first_name, properties, is_external, epoch_ms(updated_at) - epoch_ms(created_at), groups "
        "FROM profiles").fetchall() == [(1, "u1", "Ada", '{"plan":"pro"}', False, 1, ["g1"]),
                                        (2, "u2", "Ada", '{"plan":"pro"}', False, 2, ["g1"]),
                                        (3, "u3", "Ada", '{"plan":"pro"}', False, 3, ["g1"])]
    assert connection.execute("SELECT max(version) FROM schema_migrations").fetchone() == (len(MIGRATIONS),)


_JSON_TEXT_COLUMNS = (("events", "properties"), ("profiles", "properties"), ("groups", "properties"),
                      ("session_replay_chunks", "payload"))


def _compression_of(connection: duckdb.DuckDBPyConnection, table: str, column: str) -> set[str]:
    return {row[0] for row in connection.execute(
        f"SELECT DISTINCT compression FROM pragma_storage_info('{table}') "
        "WHERE column_name = ? AND segment_type = 'VARCHAR'", [column]).fetchall()}


def test_json_text_columns_are_rebuilt_compressed_with_every_row_kept(tmp_path: Path) -> None:
    """Migration 7: the JSON text columns of a store made before it are zstd-compressed from
    then on; every row and column is kept, events in the order they were stored, profiles and
    groups in `seq` order, and the keys of groups and replay chunks stay."""
    connection = _migrated_to(tmp_path / "old.duckdb", 6)
    properties = '{"screen":"Home","context":{"app":"ShopApp"}}'
    for seq in (1, 2, 3):
        connection.execute(
            "INSERT INTO events (seq, id, name, properties, created_at, received_at, groups) "
            "VALUES (?, uuid(), 'tap', ?, epoch_ms(?::BIGINT), epoch_ms(?::BIGINT), ['g1'])",
            [seq, properties, _T0 + seq, _T0])
    for seq, profile_id in ((3, "u3"), (1, "u1"), (2, "u2")):
        connection.execute(
            "INSERT INTO profiles (seq, project_id, id, properties, created_at, updated_at) "
            "VALUES (?, 'demo', ?, ?, epoch_ms(?::BIGINT), epoch_ms(?::BIGINT))",
            [seq, profile_id, properties, _T0, _T0 + seq])
    connection.execute("INSERT INTO groups (seq, project_id, id, type, name, properties, created_at, updated_at) "
                       "VALUES (4, 'demo', 'g1', 'company', 'Acme', ?, now()::TIMESTAMP, now()::TIMESTAMP)",
                       [properties])
    connection.execute(
        "INSERT INTO session_replay_chunks VALUES (5, 'demo', 's1', 0, now()::TIMESTAMP, now()::TIMESTAMP, 2, true, "
        "'[{\"type\":2}]', now()::TIMESTAMP)")
    before = {table: connection.execute(f"SELECT * FROM {table}").fetchall()
              for table, _ in _JSON_TEXT_COLUMNS}
    connection.execute("CHECKPOINT")
    assert all(JSON_TEXT_COMPRESSION.upper() not in _compression_of(connection, table, column)
               for table, column in _JSON_TEXT_COLUMNS)

    migrate(connection)
    connection.execute("CHECKPOINT")

    for table, column in _JSON_TEXT_COLUMNS:
        assert _compression_of(connection, table, column) == {JSON_TEXT_COMPRESSION.upper()}, table
    after = {table: connection.execute(f"SELECT * FROM {table}").fetchall()
             for table, _ in _JSON_TEXT_COLUMNS}
    assert after["events"] == before["events"]
    assert after["profiles"] == sorted(before["profiles"])  # in seq order now
    assert after["groups"] == before["groups"] and after["session_replay_chunks"] == before["session_replay_chunks"]
    assert connection.execute("SELECT table_name FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' "
                              "AND table_name IN ('groups', 'session_replay_chunks') ORDER BY 1").fetchall() == [
        ("groups",), ("session_replay_chunks",)]
    assert connection.execute("SELECT max(version) FROM schema_migrations").fetchone() == (len(MIGRATIONS),)


def test_a_store_of_an_old_storage_version_is_migrated_without_compression(tmp_path: Path) -> None:
    """A file made by DuckDB 1.x keeps storage version v1.0.0, which refuses zstd strings: the
    migrations still apply, with DuckDB choosing the compression as before."""
    path = str(tmp_path / "old-format.duckdb")
    duckdb.connect(path, config={"storage_compatibility_version": "v1.0.0"}).close()
    connection = duckdb.connect(path)

    migrate(connection)
    connection.execute("INSERT INTO events (seq, id, properties, created_at, received_at) "
                       "VALUES (1, uuid(), '{\"a\":\"b\"}', now()::TIMESTAMP, now()::TIMESTAMP)")
    connection.execute("CHECKPOINT")

    assert connection.execute("SELECT max(version) FROM schema_migrations").fetchone() == (len(MIGRATIONS),)
    assert JSON_TEXT_COMPRESSION.upper() not in _compression_of(connection, "events", "properties")
    assert connection.execute("SELECT properties FROM events").fetchall() == [('{"a":"b"}',)]

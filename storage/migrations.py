"""The local database's migrations, applied in order once each (`storage.database.migrate`).

Never edit a shipped entry; append a new one. Tables are made from the column lists of
`storage.schema` and `storage.upstream_rows`, so DDL and the code that fills them cannot drift.
"""

from __future__ import annotations

from storage.schema import (
    EVENT_COLUMNS,
    GROUP_COLUMNS,
    PROFILE_COLUMNS,
    PROFILE_GROUPS,
    REPLAY_COLUMNS,
    SESSION_COLUMNS,
    Column,
)
from storage.upstream_rows import COLUMNS, SNAPSHOTTED, snapshot_ddl, snapshot_table, upstream_sessions_ddl


def _create_table(name: str, columns: tuple[Column, ...], extra: str = "") -> str:
    body = ",\n  ".join(c.ddl for c in columns)
    return f"CREATE TABLE IF NOT EXISTS {name} (\n  {body}{extra}\n)"


def _from_json(target: str, table: str, source: str, leading: tuple[str, ...] = ()) -> str:
    """Copy rows of the earlier JSON ledger (times in epoch ms) into a typed table."""
    values = []
    for column in COLUMNS[table]:
        if column.sql_type == "TIMESTAMP":
            values.append(f"epoch_ms((j->>'$.{column.name}')::BIGINT)")
        elif column.name == "properties":
            values.append(f"(j->'$.{column.name}')::VARCHAR")
        elif column.sql_type.endswith("[]"):
            values.append(f"(j->'$.{column.name}')::{column.sql_type}")
        else:
            values.append(f"(j->>'$.{column.name}')::{column.sql_type}")
    return f"INSERT INTO {target} SELECT {', '.join((*leading, *values))} {source}"


def _rebuilt(table: str, columns: tuple[Column, ...], extra: str = "", *, order_by_seq: bool = True) -> tuple[str, ...]:
    """Make `table` again from its column list, keeping its rows."""
    order = " ORDER BY seq" if order_by_seq else ""
    copy = f"INSERT INTO {table}_rebuilt BY NAME SELECT * FROM {table}{order}"  # noqa: S608 - fixed names
    return (
        _create_table(f"{table}_rebuilt", columns, extra),
        copy,
        f"DROP TABLE {table}",
        f"ALTER TABLE {table}_rebuilt RENAME TO {table}",
    )


MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        _create_table("events", EVENT_COLUMNS),
        _create_table("profiles", PROFILE_COLUMNS, ",\n  PRIMARY KEY (project_id, id)"),
        "CREATE TABLE IF NOT EXISTS salts (day DATE PRIMARY KEY, salt VARCHAR NOT NULL)",
    ),
    (
        f"ALTER TABLE profiles ADD COLUMN {PROFILE_GROUPS.name} {PROFILE_GROUPS.sql_type}",
        _create_table("sessions", SESSION_COLUMNS),
        _create_table("groups", GROUP_COLUMNS, ",\n  PRIMARY KEY (project_id, id)"),
        _create_table(
            "session_replay_chunks", REPLAY_COLUMNS, ",\n  PRIMARY KEY (project_id, session_id, chunk_index)"
        ),
    ),
    (
        # The upstream ledger (docs/contract.md §10): every batch is recorded here before its first attempt.
        # `payload` snapshots the rows of mutable tables (sessions, profiles, groups) so a retry
        # sends exactly the same rows; events and replay chunks never change and are re-read by seq.
        """CREATE TABLE sync_batches (
          id BIGINT PRIMARY KEY, table_name VARCHAR NOT NULL, first_seq BIGINT NOT NULL,
          last_seq BIGINT NOT NULL, row_count INTEGER NOT NULL, token VARCHAR NOT NULL, payload VARCHAR,
          status VARCHAR NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, ambiguous BOOLEAN NOT NULL DEFAULT false,
          last_error VARCHAR, created_at TIMESTAMP NOT NULL, done_at TIMESTAMP)""",
        """CREATE TABLE sync_quarantine (
          table_name VARCHAR NOT NULL, seq BIGINT NOT NULL, error VARCHAR NOT NULL, row VARCHAR NOT NULL,
          quarantined_at TIMESTAMP NOT NULL)""",
        # The session rows upstream holds now: the next version of a session cancels this one.
        "CREATE TABLE sync_sent_sessions (id VARCHAR PRIMARY KEY, row VARCHAR NOT NULL)",
    ),
    (
        # Set-based ledger (one statement per step on the writer): snapshots of mutable tables as
        # typed rows instead of one JSON payload per batch, and what upstream holds of each
        # session as a typed row; the JSON of earlier versions is carried over.
        *(snapshot_ddl(table) for table in sorted(SNAPSHOTTED)),
        upstream_sessions_ddl(),
        _from_json("sync_upstream_sessions", "sessions", "FROM (SELECT row::JSON AS j FROM sync_sent_sessions)"),
        *(_from_json(snapshot_table(table), table,
                     f"""FROM (SELECT id AS batch_id, first_seq AS seq, unnest(from_json(payload, '["JSON"]')) AS j
                         FROM sync_batches WHERE table_name = '{table}' AND status = 'pending'
                         AND payload IS NOT NULL)""", ("batch_id", "seq"))  # noqa: S608 - fixed names
          for table in sorted(SNAPSHOTTED)),
        "UPDATE sync_batches SET payload = NULL WHERE payload IS NOT NULL",
        "DROP TABLE sync_sent_sessions",
    ),
    (
        # `sessions` and `sync_upstream_sessions` without their primary key on `id`: DuckDB holds
        # such an index in memory whole, and it grew with the store until commits failed at the
        # memory limit. Tables made by a fresh install's earlier migrations already lack it (they
        # are made from the same column lists); rebuilding them changes nothing there. Rows are
        # copied in `seq` order, which commits rely on to skip old row groups.
        _create_table("sessions_rebuilt", SESSION_COLUMNS),
        "INSERT INTO sessions_rebuilt BY NAME SELECT * FROM sessions ORDER BY seq",
        "DROP TABLE sessions",
        "ALTER TABLE sessions_rebuilt RENAME TO sessions",
        upstream_sessions_ddl("sync_upstream_sessions_rebuilt"),
        "INSERT INTO sync_upstream_sessions_rebuilt BY NAME SELECT * FROM sync_upstream_sessions",
        "DROP TABLE sync_upstream_sessions",
        "ALTER TABLE sync_upstream_sessions_rebuilt RENAME TO sync_upstream_sessions",
    ),
    (
        # `profiles` without its primary key, for the same reason (~64 bytes per profile, and
        # profiles are never dropped); the writer keeps (project_id, id) unique
        # (`storage.profiles`). Rows are copied in `seq` order, as above.
        _create_table("profiles_rebuilt", (*PROFILE_COLUMNS, PROFILE_GROUPS)),
        "INSERT INTO profiles_rebuilt BY NAME SELECT * FROM profiles ORDER BY seq",
        "DROP TABLE profiles",
        "ALTER TABLE profiles_rebuilt RENAME TO profiles",
    ),
    (
        # The JSON text columns compressed with zstd (`storage.schema.JSON_TEXT_COMPRESSION`):
        # DuckDB sets a column's compression only when the table is made. Events and replay
        # chunks are never updated, so a plain copy keeps their `seq` order (insertion order is
        # preserved) without sorting the store; profiles and groups are copied in `seq` order.
        *_rebuilt("events", EVENT_COLUMNS, order_by_seq=False),
        *_rebuilt("profiles", (*PROFILE_COLUMNS, PROFILE_GROUPS)),
        *_rebuilt("groups", GROUP_COLUMNS, ",\n  PRIMARY KEY (project_id, id)"),
        *_rebuilt("session_replay_chunks", REPLAY_COLUMNS, ",\n  PRIMARY KEY (project_id, session_id, chunk_index)",
                  order_by_seq=False),
    ),
    (
        # When the store was last compacted (`storage.database.compact`); writing it also gives
        # the compacting checkpoint a change to write, without which DuckDB skips it.
        "CREATE TABLE store_compactions (compacted_at TIMESTAMP NOT NULL)",
    ),
)

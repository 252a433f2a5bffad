"""Opening the DuckDB file: settings, migrations, and the daily salts (docs/contract.md §5.1, §8).

Input: the file's path. Output: a migrated connection for the writer thread. Automatic
checkpoints are moved out of commits (a scheduled job checkpoints through the writer, between
commits), and the WAL stays fsynced on every commit, which is what makes a 2xx mean "on disk".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import secrets
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from storage.migrations import MIGRATIONS
from storage.schema import without_json_text_compression

log = logging.getLogger(__name__)

# DuckDB checkpoints inside a commit once the WAL passes this size; the writer checkpoints on
# its own schedule well before, so this is only the last resort.
_AUTOMATIC_CHECKPOINT_THRESHOLD = "1GB"
# DuckDB's allocator keeps what a task freed until the task's peak passes this (128 MiB by
# default), so every large insert left up to that much resident. At 8 MiB the gateway's peak RSS
# under hostile load is ~30 MB lower (bench/fuzz.py), for no measurable ingest cost.
_ALLOCATOR_FLUSH_THRESHOLD = "8MB"
# Rows per row group. A compacting checkpoint (below) merges partly filled groups into full ones:
# at DuckDB's 122,880 rows per group a merge rewrote up to that many rows, and the cost of a
# checkpoint swung with where the groups happened to stand (0.6-3.4 s for the same 181 MB of WAL
# on a 600k-event store; 0.4-0.55 s at 32,768; docs/behavior.md has the benchmark's figures). A
# setting of the attachment, not of the file: every open sets it.
ROW_GROUP_SIZE = 32_768
# A checkpoint also compacts ("vacuums") row groups: it merges adjacent partly filled groups and
# reclaims the space of deleted rows by rewriting them. Every scheduled checkpoint leaves the
# events it wrote as a partly filled group, so every second or third one merged the last few
# again: 0.4-0.7 s instead of 0.05 s for 30 MB of WAL at 7,000 events/s, and those were the
# requests' p99. Scheduled checkpoints therefore do not compact (a group whose rows are all
# deleted is still dropped, so retention frees the space of old events); the daily compaction
# (`compact`, after retention) does, for the rows rewritten in place meanwhile (sessions,
# profiles).
_SCHEDULED_VACUUM_TASKS = 0
_COMPACTING_VACUUM_TASKS = 100  # DuckDB's default
# The store is attached to an in-memory database under this name (the only way to give it a row
# group size) and made every connection's default (`use_store`).
STORE_ALIAS = "store"


def open_database(path: str, memory_limit: str = "64MB", threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) and migrate the gateway's DuckDB file; `threads`: DuckDB's worker
    threads (`storage.threads`), None for its default of one per core."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # DuckDB's default is 80% of RAM for its cache; a site box runs other things too. Spills go
    # beside the file, where DuckDB puts them for a file it opens itself.
    threads_config = {} if threads is None else {"threads": threads}
    connection = duckdb.connect(
        config={"memory_limit": memory_limit, "temp_directory": f"{path}.tmp", **threads_config})
    connection.execute(f"ATTACH ? AS {STORE_ALIAS} (ROW_GROUP_SIZE {ROW_GROUP_SIZE})", [path])
    use_store(connection)
    connection.execute(f"SET checkpoint_threshold = '{_AUTOMATIC_CHECKPOINT_THRESHOLD}'")
    connection.execute(f"SET allocator_flush_threshold = '{_ALLOCATOR_FLUSH_THRESHOLD}'")
    connection.execute(f"SET max_vacuum_tasks = {_SCHEDULED_VACUUM_TASKS}")
    disable_progress_bar(connection)
    migrate(connection)
    return connection


def compact(connection: duckdb.DuckDBPyConnection) -> None:
    """Checkpoint with compaction: merge partly filled row groups, reclaim deleted rows' space."""
    connection.execute("DELETE FROM store_compactions")
    connection.execute("INSERT INTO store_compactions VALUES (now()::TIMESTAMP)")
    connection.execute(f"SET max_vacuum_tasks = {_COMPACTING_VACUUM_TASKS}")
    try:
        connection.execute("CHECKPOINT")
    finally:
        connection.execute(f"SET max_vacuum_tasks = {_SCHEDULED_VACUUM_TASKS}")


def use_store(connection: duckdb.DuckDBPyConnection) -> None:
    """Make the store this connection's default database (a cursor starts in the in-memory one)."""
    connection.execute(f"USE {STORE_ALIAS}")


def disable_progress_bar(connection: duckdb.DuckDBPyConnection) -> None:
    """Long reads (sync) must not draw a progress bar on the service's log; per connection."""
    connection.execute("SET enable_progress_bar = false")


def memory_in_use(connection: duckdb.DuckDBPyConnection) -> int:
    """Bytes DuckDB holds now (its cache of the store's blocks and working memory), at most
    `storage.memory_limit`: the share of the process's memory that grows with the store."""
    row = connection.execute("SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()").fetchone()
    return int(row[0]) if row else 0


# DuckDB's relation API (`connection.sql(query).to_arrow_table()`) binds a query to learn its
# columns, then sends its text again to run it: every query of a commit was planned twice. Run
# through `execute` (2000-event commits, in-process): the sessions merge 20.7-26.8 → 18.0-23.7 ms
# in the app mix, 30-40 → 27 ms when every event starts a session; alone, 22 → 11 ms. DuckDB warns
# that `execute(...).to_arrow_table()` copies the rows once more; a commit's results are a few
# thousand rows, so that copy costs less than the second plan, and the warning is off for this
# module's calls (pyproject.toml's pytest settings say the same, as they reset the filters).
warnings.filterwarnings("ignore", message="Arrow output on a DB-API result makes an extra copy",
                        category=UserWarning, module=r"storage\.database")


def arrow_result(connection: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()) -> pa.Table:
    """The rows of `sql` as an Arrow table, the query planned once (see above)."""
    table: pa.Table = connection.execute(sql, list(params)).to_arrow_table()
    return table


@contextlib.contextmanager
def registered(connection: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[None]:
    """`table` readable as `name` by the statements inside the block."""
    connection.register(name, table)
    try:
        yield
    finally:
        # After a failed statement the transaction is aborted and unregister fails too; its
        # "Current transaction is aborted" must not replace the statement's own error.
        with contextlib.suppress(duckdb.TransactionException):
            connection.unregister(name)


def migrate(connection: duckdb.DuckDBPyConnection) -> None:
    """Apply the migrations not yet recorded in `schema_migrations`."""
    connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)"
    )
    row = connection.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    applied = int(row[0]) if row else 0
    compressible = _supports_json_text_compression(connection)
    for version, statements in enumerate(MIGRATIONS, start=1):
        if version <= applied:
            continue
        started = time.monotonic()
        connection.execute("BEGIN")
        for statement in statements:
            if not compressible:
                statement = without_json_text_compression(statement)
            connection.execute(statement)
        connection.execute(
            "INSERT INTO schema_migrations VALUES (?, now()::TIMESTAMP)", [version]
        )
        connection.execute("COMMIT")
        # Some migrations copy whole tables (~8 s per million events on a 2-core box).
        log.info("store migration %d applied in %.1fs", version, time.monotonic() - started)


def _supports_json_text_compression(connection: duckdb.DuckDBPyConnection) -> bool:
    """Whether the file's storage version can hold zstd-compressed strings (v1.2.0 and later).

    A file made by DuckDB 1.x keeps the old default storage version (v1.0.0) for good, and
    refuses such a column; its tables are made without it and DuckDB chooses, as before."""
    row = connection.execute(
        "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    found = re.match(r"v(\d+)\.(\d+)", row[0] if row and row[0] else "")
    if found is None:
        return True  # in memory: always the current storage
    return (int(found[1]), int(found[2])) >= (1, 2)


def salts_for(connection: duckdb.DuckDBPyConnection, day: dt.date) -> tuple[str, str | None]:
    """The salt of `day` (created and committed when missing) and the one before it, if any."""
    current = _salt_of(connection, day)
    if current is None:
        connection.execute(
            "INSERT INTO salts VALUES (?, ?) ON CONFLICT DO NOTHING", [day, secrets.token_hex(16)]
        )
        current = _salt_of(connection, day)
        assert current is not None
    row = connection.execute(
        "SELECT salt FROM salts WHERE day < ? ORDER BY day DESC LIMIT 1", [day]
    ).fetchone()
    return current, (row[0] if row else None)


def _salt_of(connection: duckdb.DuckDBPyConnection, day: dt.date) -> str | None:
    row = connection.execute("SELECT salt FROM salts WHERE day = ?", [day]).fetchone()
    return row[0] if row else None

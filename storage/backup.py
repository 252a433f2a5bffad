"""A consistent copy of the store in a new DuckDB file, taken while the gateway runs.

Input: a connection to the store (the writer's, between commits, so no transaction is half in
the copy; or a read-only one while the gateway is stopped) and the destination path, which must
not exist. Output: the new file holding every table, with the rows committed at that moment.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

_ALIAS = "gateway_backup_target"


def copy_database(connection: duckdb.DuckDBPyConnection, destination: str) -> int:
    """Copy every table into `destination`; returns the copy's size in bytes."""
    target = Path(destination)
    if target.exists():
        raise FileExistsError(f"{target} exists; a backup never overwrites a file")
    row = connection.execute("SELECT current_database()").fetchone()
    assert row is not None
    source = str(row[0])
    connection.execute(f"ATTACH ? AS {_ALIAS}", [str(target)])
    try:
        connection.execute(f'COPY FROM DATABASE "{source}" TO {_ALIAS}')
    finally:
        connection.execute(f"DETACH {_ALIAS}")
    return target.stat().st_size

"""Reads the other packages need from the store, each on a reader cursor of their own (never the writer).

Input: a reader cursor (`StorageWriter.reader()`) and what to look for. Output: plain rows. The
SQL lives here so that nothing outside `storage/` touches a connection (docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

import duckdb


def open_live_sessions(reader: duckdb.DuckDBPyConnection, ended_since_ms: int,
                       borrowed_columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """The live sessions still open and active since `ended_since_ms`, oldest end first:
    `(project_id, id, device_id, profile_id, ended_at ms, exit_path, exit_origin, *borrowed_columns)`."""
    columns = ", ".join(borrowed_columns)
    return reader.execute(
        f"""SELECT project_id, id, device_id, profile_id, epoch_ms(ended_at), exit_path, exit_origin, {columns}
            FROM sessions WHERE is_live AND NOT closed AND ended_at >= epoch_ms(?::BIGINT)
            ORDER BY ended_at""",  # noqa: S608 - column names are the caller's constants
        [ended_since_ms],
    ).fetchall()

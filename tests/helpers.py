"""Shared test helpers: configs on disk, auth headers, event builders, reading the DuckDB file."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import duckdb

CLIENT_ID = "5f0c4d1e-8a3b-4c2d-9e7f-1a2b3c4d5e6f"
CLIENT_SECRET = "demo-secret"
PROJECT_ID = "demo"
AUTH = {"openpanel-client-id": CLIENT_ID, "openpanel-client-secret": CLIENT_SECRET}
PHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)

_insert_ids = itertools.count()


def write_config(folder: Path, extra: str = "", **sections: dict[str, Any]) -> Path:
    """A config.toml in `folder` with storage inside it, port 0 and the demo project."""
    values: dict[str, dict[str, Any]] = {
        "server": {"host": "127.0.0.1", "port": 0, "graceful_shutdown_seconds": 10.0},
        "storage": {"path": "var/gateway.duckdb", "cache_dir": "var/cache", "min_free_disk_bytes": 0},
    }
    for name, section in sections.items():
        values.setdefault(name, {}).update(section)
    lines = []
    for name, section in values.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml(value)}" for key, value in section.items())
    lines += [
        "[[projects]]",
        f'id = "{PROJECT_ID}"',
        f'client_id = "{CLIENT_ID}"',
        f'client_secret = "{CLIENT_SECRET}"',
        extra,
    ]
    path = folder / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def track(name: str = "screen_view", insert_id: str | None = None, **properties: Any) -> dict[str, Any]:
    """A `track` item; `insert_id="auto"` gives a fresh unique `__insertId`."""
    if insert_id == "auto":
        insert_id = f"test-{next(_insert_ids)}"
    if insert_id is not None:
        properties["__insertId"] = insert_id
    return {"type": "track", "payload": {"name": name, "properties": properties}}


def iso(moment: dt.datetime) -> str:
    """ISO-8601 with milliseconds and Z, as SDKs send it."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def query(database: Path | str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the gateway's DuckDB file directly (only while no server holds it)."""
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(sql, list(params)).fetchall()


# Text that JSON escapes, and a client's own `__gateway`, which the gateway's name replaces.
AWKWARD_PROPERTIES = {"quote": 'say "hi"', "backslash": "C:\\temp\\new", "line": "a\nb\tc", "unicode": "Grüße 東京 🎉",
                      "apostrophe": "it's", "control": "\u0001", "nested": {"deep": {"er": 1.5}}, "__gateway": "spoofed"}
AWKWARD_STORED = {"quote": 'say "hi"', "backslash": "C:\\temp\\new", "line": "a\nb\tc", "unicode": "Grüße 東京 🎉",
                  "apostrophe": "it's", "control": "\u0001", "nested.deep.er": "1.5", "__gateway": "site-01"}

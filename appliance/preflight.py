"""What must hold before the gateway can run: files, folders, permissions, the upstream.

Input: loaded `Settings`. Output: a list of `Finding`s (`ok` or not, and a line naming the key
and the problem). `check` prints them all; `serve` refuses to start on the first problem with
that one line (exit 2), instead of binding the port and failing in the middle of startup. The
checks use the rights of the process that runs them, so `ExecStartPre=… check` under systemd
sees what the service will see.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import maxminddb

from appliance.settings import Settings


@dataclass(frozen=True, slots=True)
class Finding:
    ok: bool
    text: str


def local_findings(settings: Settings) -> list[Finding]:
    """Storage, cache and geo database: present, of the right kind, with the rights needed."""
    storage = Path(settings.storage.path)
    findings = [_folder("storage.path", storage.parent), _folder("storage.cache_dir", Path(settings.storage.cache_dir))]
    for file in (storage, Path(settings.storage.path + ".wal")):
        if file.exists():
            findings.append(_writable_file("storage.path", file))
    if settings.geo.database:
        findings.append(_geo_database(Path(settings.geo.database)))
    return findings


def upstream_findings(settings: Settings) -> list[Finding]:
    """Can the upstream be reached, and can its tables take the gateway's rows?"""
    from storage.upstream_rows import REQUIRED, TABLE_ORDER, canonical_schema
    from sync.clickhouse import Upstream
    from sync.upstream_tables import plan_table

    config = settings.upstream
    if not config.url:
        return [Finding(True, "upstream.url is empty: nothing is forwarded")]
    where = config.url.rpartition("@")[2]  # never the credentials
    try:
        upstream = Upstream(config.url, config.database, timeout_seconds=config.timeout_seconds)
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the finding itself
        return [Finding(False, f"upstream.url: cannot connect to {where}: {first_line(exc)}")]
    try:
        described = upstream.describe()
    except Exception as exc:  # noqa: BLE001 - as above
        return [Finding(False, f"upstream.url: {where} did not answer: {first_line(exc)}")]
    finally:
        upstream.close()
    findings = [Finding(True, f"upstream {where} answers")]
    for table in TABLE_ORDER:
        plan = plan_table(table, canonical_schema(table), described.get(table), REQUIRED[table], config.database)
        findings += [Finding(False, f"upstream: {problem}") for problem in plan.problems]
        if not plan.problems:
            findings.append(Finding(True, f"upstream table {config.database}.{table} can take the gateway's rows"))
    return findings


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _folder(key: str, folder: Path) -> Finding:
    if folder.is_dir():
        if os.access(folder, os.W_OK | os.X_OK):
            return Finding(True, f"{key}: folder {folder} is writable")
        return Finding(False, f"{key}: folder {folder} is not writable by this user (uid {os.getuid()})")
    if folder.exists():
        return Finding(False, f"{key}: {folder} is not a folder")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        return Finding(True, f"{key}: folder {folder} will be created")
    return Finding(False, f"{key}: folder {folder} does not exist and {existing} is not writable by this user")


def _writable_file(key: str, file: Path) -> Finding:
    if not file.is_file():
        return Finding(False, f"{key}: {file} is not a regular file")
    if not os.access(file, os.R_OK | os.W_OK):
        return Finding(False, f"{key}: {file} is not readable and writable by this user (uid {os.getuid()})")
    return Finding(True, f"{key}: {file} is readable and writable")


def _geo_database(file: Path) -> Finding:
    if not file.exists():
        return Finding(False, f"geo.database: {file} does not exist")
    if not os.access(file, os.R_OK):
        return Finding(False, f"geo.database: {file} is not readable by this user (uid {os.getuid()})")
    try:
        reader = maxminddb.open_database(str(file))
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        return Finding(False, f"geo.database: {file} is not a MaxMind database ({first_line(exc)})")
    database_type = reader.metadata().database_type
    reader.close()
    return Finding(True, f"geo.database: {file} ({database_type})")

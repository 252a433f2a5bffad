"""Operator commands: `check`, `upstream-init`, `sync`, `status`, `backup` (docs/operations.md;
`upstream-init`: docs/contract.md §10; the admin endpoints they use: §3.6).

Only one process can open the DuckDB file, so `sync` and `status` ask the running gateway
through its loopback admin endpoints; when no gateway answers they open the files themselves.
`sync` works through a large backlog a few batches at a time and prints progress as it goes.
`status` prints a table (or `--json`) and exits 0 when healthy, 1 when degraded (not ready,
last sync failed, upstream silent for too long or a table it cannot take), 2 when down.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx

from appliance.humanize import byte_size, duration
from appliance.preflight import first_line, local_findings, upstream_findings
from appliance.settings import Settings
from storage import ledger
from storage.backup import copy_database
from storage.upstream_rows import REQUIRED, TABLE_ORDER, canonical_schema
from storage.writer import StorageWriter
from sync.clickhouse import Upstream
from sync.job import SyncJob
from sync.openpanel_schema import DEDUPLICATION_WINDOW
from sync.upstream_tables import plan_table

_BATCHES_PER_CALL = 4


def upstream_init(settings: Settings) -> int:
    """Create missing upstream tables (OpenPanel's schema), then report what matters about every
    table: types that cannot take the gateway's rows (exit 1), columns it will not fill, and how
    a resent insert is kept from landing twice."""
    config = settings.upstream
    if not config.url:
        print("upstream.url is empty: nothing to initialise", file=sys.stderr)
        return 2
    where = config.url.rpartition("@")[2]  # never the credentials
    try:
        upstream = Upstream(config.url, config.database, timeout_seconds=config.timeout_seconds)
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the whole answer
        print(f"upstream.url: cannot connect to {where}: {first_line(exc)}", file=sys.stderr)
        return 2
    try:
        layout = f"ON CLUSTER {config.cluster}" if config.cluster else "single node"
        for table in upstream.create_tables(config.cluster):
            print(f"created {config.database}.{table} ({layout})")
        problems, notes = _inspect(upstream, config.set_deduplication_window)
    except Exception as exc:  # noqa: BLE001 - refused DDL, lost connection: one line, not a traceback
        print(f"upstream {where}: {first_line(exc)}", file=sys.stderr)
        return 2
    finally:
        upstream.close()
    for note in notes:
        print(f"note: {note}")
    for problem in problems:
        print(f"problem: {problem}")
    if not problems:
        print(f"upstream {config.database}: all {len(TABLE_ORDER)} tables can take the gateway's rows")
    return 1 if problems else 0


def _inspect(upstream: Upstream, may_set_window: bool) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    notes: list[str] = []
    described = upstream.describe()
    for table in TABLE_ORDER:
        found = described.get(table)
        plan = plan_table(table, canonical_schema(table), found, REQUIRED[table], upstream.database)
        problems += plan.problems
        if found is None:
            continue
        where = f"{upstream.database}.{table}"
        if plan.unsent:
            notes.append(f"{where} has no column for {', '.join(plan.unsent)}: not forwarded")
        if plan.set_inserted_at:
            notes.append(f"{where}.inserted_at is set to the upstream's time of each insert")
        if found.distributed:
            notes.append(f"{where} is Distributed over {found.local_table}: inserted in the foreground")
        if found.dedup_window > 0:
            continue
        if found.can_set_dedup_window and may_set_window:
            upstream.set_deduplication_window(table)
            notes.append(f"{where}: set non_replicated_deduplication_window = {DEDUPLICATION_WINDOW}")
        else:
            notes.append(f"{where} has no deduplication window: the gateway looks up which rows it already "
                         "holds before every insert")
    return problems, notes


def admin_url_file(settings: Settings) -> Path:
    """The file in which a running gateway leaves its address, beside its DuckDB file."""
    return Path(settings.storage.path + ".url")


def _admin_url(settings: Settings) -> str:
    try:
        return admin_url_file(settings).read_text().strip()
    except FileNotFoundError:
        pass
    host = settings.server.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - listening everywhere: reach it on loopback
        host = "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.server.port}"


def _running_gateway(settings: Settings) -> str | None:
    url = _admin_url(settings)
    try:
        httpx.get(f"{url}/healthz", timeout=2.0)
    except httpx.TransportError:
        return None
    return url





def _storage_busy(settings: Settings, exc: Exception) -> int:
    print(f"cannot open {settings.storage.path} ({exc}); a gateway seems to hold it, but none answered at "
          f"{_admin_url(settings)}", file=sys.stderr)
    return 1


def check(settings: Settings, config_path: str, *, upstream: bool = False) -> int:
    """Print every finding; 0 when all hold, 2 when any does not (the service must not start)."""
    findings = local_findings(settings) + (upstream_findings(settings) if upstream else [])
    for finding in findings:
        print(f"{'ok' if finding.ok else 'problem'}: {finding.text}")
    failed = sum(not finding.ok for finding in findings)
    if failed:
        print(f"configuration {config_path}: {failed} problem(s)", file=sys.stderr)
        return 2
    print(f"configuration {config_path} is valid: {len(settings.projects)} project(s)")
    return 0


HEALTHY, DEGRADED, DOWN = 0, 1, 2


def status(settings: Settings, *, as_json: bool = False) -> int:
    """Print health, backlog and sync state, from the running gateway or from the files."""
    url = _running_gateway(settings)
    if url is not None:
        body: dict[str, Any] = httpx.get(f"{url}/admin/status", timeout=30).json()
    else:
        try:
            connection = duckdb.connect(settings.storage.path, read_only=True)
        except duckdb.IOException as exc:
            return _storage_busy(settings, exc)
        except duckdb.Error as exc:
            print(f"gateway not running, and {settings.storage.path} cannot be read: {exc}", file=sys.stderr)
            return DOWN
        with connection:
            body = {**ledger.status(connection), "gateway": "not running"}
    code, reasons = health_of(body)
    body["health"] = {"code": code, "state": ("healthy", "degraded", "down")[code], "reasons": reasons}
    print(json.dumps(body, indent=2, default=str) if as_json else _table(body))
    return code


def health_of(body: dict[str, Any]) -> tuple[int, list[str]]:
    """(0 healthy | 1 degraded | 2 down, the reasons) of an `/admin/status` body."""
    if body.get("gateway") == "not running":
        return DOWN, ["the gateway is not running"]
    reasons = []
    if body.get("ready") not in (None, "ready"):
        reasons.append(f"not ready: {body['ready']}")
    last = body.get("last_sync") or {}
    if last.get("error"):
        reasons.append(f"last sync failed: {last['error'].splitlines()[0][:200]}")
    upstream = body.get("upstream_health") or {}
    if upstream.get("status") == "failing":
        reasons.append(upstream.get("reason", "upstream failing"))
    reasons += [f"upstream table problem: {problem}" for problem in body.get("upstream_problems") or []]
    return (DEGRADED if reasons else HEALTHY), reasons


def _table(body: dict[str, Any]) -> str:
    health = body["health"]
    lines = [f"gateway      {body.get('gateway_id', '-')} {body.get('version', '')}  "
             f"{health['state'].upper()}  up {duration(body.get('uptime_seconds'))}".rstrip()]
    lines += [f"  - {reason}" for reason in health["reasons"]]
    if body.get("gateway") != "not running":
        last = body.get("last_sync") or {}
        upstream = body.get("upstream_health") or {}
        lines.append(f"upstream     {body.get('upstream') or 'none'}  last success "
                     f"{_ago(upstream.get('silent_seconds'))}")
        if last:
            sent = sum((last.get("sent_rows") or {}).values())
            lines.append(f"last sync    {'failed: ' + last['error'][:120] if last.get('error') else 'ok'}, "
                         f"{sent} rows sent in {last.get('seconds', 0):.1f}s")
    lines.append(f"sessions     {body.get('open_sessions', 0)} open")
    lines.append(f"quarantine   {body.get('quarantined_rows', 0)} rows")
    if "disk_free_bytes" in body:
        stored, free = byte_size(body["storage_bytes"]), byte_size(body["disk_free_bytes"])
        lines.append(f"disk         {stored} stored, {free} free")
    lines.append("")
    lines.append(f"{'table':<24}{'backlog rows':>14}  oldest pending batch")
    for table, entry in body.get("backlog", {}).items():
        lines.append(f"{table:<24}{entry['rows']:>14}  {entry.get('oldest_pending_batch') or '-'}")
    return "\n".join(lines)


def _ago(seconds: float | None) -> str:
    return "n/a (no upstream)" if seconds is None else f"{duration(seconds)} ago"


def backup(settings: Settings, destination: str) -> int:
    """Write a consistent copy of the store: through the running gateway, or from the file."""
    target = str(Path(destination).resolve())
    url = _running_gateway(settings)
    if url is not None:
        response = httpx.post(f"{url}/admin/backup", json={"path": target}, timeout=3600)
        if response.status_code != 200:
            print(f"backup failed: {response.json().get('message', response.text)}", file=sys.stderr)
            return 1
        size = int(response.json()["bytes"])
    else:
        try:
            with duckdb.connect(settings.storage.path, read_only=True) as connection:
                size = copy_database(connection, target)
        except duckdb.IOException as exc:
            return _storage_busy(settings, exc)
        except (FileExistsError, duckdb.Error) as exc:
            print(f"backup failed: {exc}", file=sys.stderr)
            return 1
    print(f"backup written to {target} ({size} bytes)")
    return 0


def sync(settings: Settings) -> int:
    """Forward the whole backlog now, printing progress; 0 when it is all upstream."""
    if not settings.upstream.url:
        print("upstream.url is empty: nothing to forward to", file=sys.stderr)
        return 2
    url = _running_gateway(settings)
    if url is not None:
        return _sync_through(url)
    try:
        return asyncio.run(_sync_files(settings))
    except duckdb.IOException as exc:
        return _storage_busy(settings, exc)


def _sync_through(url: str) -> int:
    total = 0
    while True:
        result = httpx.post(f"{url}/admin/sync", params={"max_batches": _BATCHES_PER_CALL}, timeout=600).json()
        sent = sum(result["sent_rows"].values())
        total += sent
        backlog = httpx.get(f"{url}/admin/status", timeout=30).json()["backlog"]
        remaining = sum(entry["rows"] for entry in backlog.values())
        print(f"sent {total} rows, {remaining} waiting", flush=True)
        if result["error"]:
            print(f"stopped: {result['error']}", file=sys.stderr)
            return 1
        if sent == 0 or remaining == 0:
            return 0


async def _sync_files(settings: Settings) -> int:
    writer = StorageWriter(settings.storage.path, cache_dir=settings.storage.cache_dir, duplicate_window_ms=0,
                           memory_limit=settings.storage.memory_limit, threads=settings.storage.threads)
    writer.start()
    job = SyncJob(writer, lambda: Upstream(settings.upstream.url, settings.upstream.database,
                                           timeout_seconds=settings.upstream.timeout_seconds),
                  gateway_id=settings.gateway.id, batch_rows=settings.sync.batch_rows,
                  interval_seconds=settings.sync.interval_seconds, clock=lambda: time.time_ns() // 1_000_000,
                  set_deduplication_window=settings.upstream.set_deduplication_window)
    try:
        result = await job.run_once(progress=lambda table, rows: print(f"{table}: {rows} rows sent", flush=True))
    finally:
        job.close()
        writer.stop()
    for problem in result.problems:
        print(f"problem: {problem}", file=sys.stderr)
    if result.error:
        print(f"stopped: {result.error}", file=sys.stderr)
        return 1
    print(f"done: {sum(result.sent_rows.values())} rows sent, {result.quarantined_rows} quarantined")
    return 0

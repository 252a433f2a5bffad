"""Sync benchmark: rows per second from the gateway's DuckDB into a chdb (embedded ClickHouse) upstream.

Creates the upstream tables (`python -m appliance upstream-init`), starts the real gateway with
forwarding on but its schedule far away, ingests `--events` events of the ingest benchmark's
mix (so sessions are built too), then times one `POST /admin/sync` that forwards the whole
backlog (events, sessions, profiles) and prints rows/s. `--runs K` repeats on fresh folders and
prints the median.

With `--sessions-heavy` every event comes from its own device at its own time in the last four
days (about one session per event, as a fleet's backlog after an outage), and while the pass
runs a prober posts a small batch every 50 ms: the worst and p99 latency of those requests show
whether the pass holds up ingest (the writer it shares with them); the same probes for 5 s before
the pass, with nothing else running, give the reference.

With `--ingest-clients N`, N clients keep posting batches of the ingest benchmark's mix while
the pass runs (a site that keeps sending while its backlog drains): the pass shares the writer
with them, and the largest WAL seen during the pass shows whether checkpoints keep up.

    .venv/bin/python bench/sync.py --runs 3 --events 400000
    .venv/bin/python bench/sync.py --sessions-heavy --events 100000 --runs 3
    .venv/bin/python bench/sync.py --events 200000 --ingest-clients 3

A pass pays about half a second once (the embedded engine's import and start, ~0.2 s; reading
the upstream's tables; reading and encoding the first batch, which nothing overlaps), so a
small backlog shows that more than the rate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import HEADERS, REPO, USER_AGENTS, Server, WalWatcher, _batch_body, _templates, write_config


def _sessions_heavy_body(size: int, rng: random.Random, now: dt.datetime) -> bytes:
    """`size` screen views, each from a new device at a random time of the last four days."""
    events = []
    for _ in range(size):
        when = now - dt.timedelta(seconds=rng.randint(3600, 4 * 86400))
        events.append({"type": "track", "payload": {"name": "screen_view", "properties": {
            "__insertId": uuid.uuid4().hex, "__deviceId": uuid.uuid4().hex,
            "__timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "__path": f"https://shop.example.com/p/{rng.randint(1, 500)}", "screen": "Product"}}})
    return msgspec.json.encode({"events": events})


class _Prober:
    """Posts a small batch every 50 ms and records how long each took, until stopped."""

    def __init__(self, url: str) -> None:
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._thread.start()

    def _run(self, url: str) -> None:
        rng = random.Random(11)
        with httpx.Client(base_url=url, headers={**HEADERS, "user-agent": USER_AGENTS[0]}, timeout=120) as http:
            while not self._stop.is_set():
                body = _sessions_heavy_body(10, rng, dt.datetime.now(dt.UTC))
                started = time.perf_counter()
                assert http.post("/track/batch", content=body).status_code == 202
                self.latencies.append(time.perf_counter() - started)
                self._stop.wait(0.05)

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join()
        return self.latencies


class _Ingest:
    """`clients` threads posting 2000-event batches of the ingest mix until stopped, and the
    largest WAL meanwhile."""

    def __init__(self, url: str, clients: int, database: Path) -> None:
        self.accepted = 0
        self.largest_wal = 0
        self._wal = WalWatcher(database)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._post, args=(url, number), daemon=True)
                         for number in range(clients)]
        for thread in self._threads:
            thread.start()

    def _post(self, url: str, number: int) -> None:
        templates, rng = _templates(), random.Random(100 + number)
        with httpx.Client(base_url=url, headers={**HEADERS, "user-agent": USER_AGENTS[0]}, timeout=120) as http:
            while not self._stop.is_set():
                response = http.post("/track/batch", content=_batch_body(templates, 2000, rng))
                if response.status_code == 202:
                    with self._lock:
                        self.accepted += response.json()["accepted"]
                else:  # load shed (503): wait as told
                    self._stop.wait(float(response.headers.get("retry-after", "1")))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.largest_wal = self._wal.stop()


def run_once(events: int, batch_rows: int, sessions_heavy: bool = False, ingest_clients: int = 0,
             server_log: Path | None = None) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="gateway-sync-bench-"))
    config = write_config(folder, f'[upstream]\nurl = "chdb://var/upstream"\n'
                                  f"[sync]\ninterval_seconds = 86400.0\nbatch_rows = {batch_rows}\n")
    subprocess.run([sys.executable, "-m", "appliance", "upstream-init", "--config", str(config)],
                   cwd=REPO, check=True, capture_output=True)
    server = Server(folder, log=server_log)
    try:
        templates, rng, now = _templates(), random.Random(3), dt.datetime.now(dt.UTC)
        with httpx.Client(base_url=server.url, headers={**HEADERS, "user-agent": USER_AGENTS[0]},
                          timeout=120) as http:
            for _ in range(events // 2000):
                body = _sessions_heavy_body(2000, rng, now) if sessions_heavy else _batch_body(templates, 2000, rng)
                assert http.post("/track/batch", content=body).status_code == 202
            baseline: list[float] = []
            if sessions_heavy:
                # The same probes with no pass running: what the box gives ingest anyway.
                prober = _Prober(server.url)
                time.sleep(5)
                baseline = prober.stop()
            prober = _Prober(server.url) if sessions_heavy else None
            database = folder / "var" / "bench.duckdb"
            ingest = _Ingest(server.url, ingest_clients, database) if ingest_clients else None
            started = time.perf_counter()
            try:
                result = http.post("/admin/sync", timeout=900).json()
            finally:
                if ingest:
                    ingest.stop()
            elapsed = time.perf_counter() - started
            latencies = prober.stop() if prober else []
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    if result["error"]:
        raise RuntimeError(f"sync failed: {result['error']}")
    rows = sum(result["sent_rows"].values())
    figures = {"rows": rows, "seconds": elapsed, "rows_per_s": rows / elapsed, **result["sent_rows"]}
    if ingest:
        figures.update(ingested_during=ingest.accepted, largest_wal_mb=ingest.largest_wal / 1e6)
    if latencies:
        figures.update(probes=len(latencies), worst_ingest_ms=max(latencies) * 1000,
                       worst_idle_ingest_ms=max(baseline) * 1000,
                       p99_ingest_ms=statistics.quantiles(latencies, n=100)[98] * 1000 if len(latencies) > 1
                       else latencies[0] * 1000)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-rows", type=int, default=50_000, help="sync.batch_rows")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--sessions-heavy", action="store_true",
                        help="one session per event, and ingest latency measured during the pass")
    parser.add_argument("--ingest-clients", type=int, default=0,
                        help="clients posting batches of the ingest mix while the pass runs")
    parser.add_argument("--server-log", type=Path, help="append the server's log to this file")
    args = parser.parse_args()
    rates, worst = [], []
    for run in range(1, args.runs + 1):
        figures = run_once(args.events, args.batch_rows, args.sessions_heavy, args.ingest_clients, args.server_log)
        rates.append(figures["rows_per_s"])
        line = (f"run {run}: {figures['rows']:,} rows in {figures['seconds']:.1f} s = "
                f"{figures['rows_per_s']:,.0f} rows/s (events {figures.get('events', 0):,}, "
                f"sessions {figures.get('sessions', 0):,})")
        if "ingested_during" in figures:
            line += (f"; {figures['ingested_during']:,} events ingested during the pass, "
                     f"WAL up to {figures['largest_wal_mb']:,.0f} MB")
        if "worst_ingest_ms" in figures:
            worst.append(figures["worst_ingest_ms"])
            line += (f"; ingest during the pass: {figures['probes']} requests, "
                     f"worst {figures['worst_ingest_ms']:.0f} ms, p99 {figures['p99_ingest_ms']:.0f} ms "
                     f"(worst {figures['worst_idle_ingest_ms']:.0f} ms with no pass running)")
        print(line, flush=True)
    if args.runs > 1:
        print(f"median of {args.runs}: {statistics.median(rates):,.0f} rows/s into chdb "
              f"({args.events:,} events, batch_rows {args.batch_rows:,})"
              + (f"; worst ingest latency during the pass {statistics.median(worst):.0f} ms (median of worsts)"
                 if worst else ""))


if __name__ == "__main__":
    main()

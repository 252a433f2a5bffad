"""Sync benchmark: rows per second from the gateway's DuckDB into a chdb (embedded ClickHouse) upstream.

Creates the upstream tables (`python -m appliance upstream-init`), starts the real gateway with
forwarding on but its schedule far away, ingests `--events` events of the ingest benchmark's
mix (so sessions are built too), then times one `POST /admin/sync` that forwards the whole
backlog (events, sessions, profiles) and prints rows/s. `--runs K` repeats on fresh folders and
prints the median.

    .venv/bin/python bench/sync.py --runs 3
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import HEADERS, REPO, USER_AGENTS, Server, _batch_body, _templates, write_config


def run_once(events: int, batch_rows: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="gateway-sync-bench-"))
    config = write_config(folder, f'[upstream]\nurl = "chdb://var/upstream"\n'
                                  f"[sync]\ninterval_seconds = 86400.0\nbatch_rows = {batch_rows}\n")
    subprocess.run([sys.executable, "-m", "appliance", "upstream-init", "--config", str(config)],
                   cwd=REPO, check=True, capture_output=True)
    server = Server(folder)
    try:
        templates, rng = _templates(), random.Random(3)
        with httpx.Client(base_url=server.url, headers={**HEADERS, "user-agent": USER_AGENTS[0]},
                          timeout=120) as http:
            for _ in range(events // 2000):
                assert http.post("/track/batch", content=_batch_body(templates, 2000, rng)).status_code == 202
            started = time.perf_counter()
            result = http.post("/admin/sync", timeout=3600).json()
            elapsed = time.perf_counter() - started
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    if result["error"]:
        raise RuntimeError(f"sync failed: {result['error']}")
    rows = sum(result["sent_rows"].values())
    return {"rows": rows, "seconds": elapsed, "rows_per_s": rows / elapsed, **result["sent_rows"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-rows", type=int, default=50_000, help="sync.batch_rows")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    rates = []
    for run in range(1, args.runs + 1):
        figures = run_once(args.events, args.batch_rows)
        rates.append(figures["rows_per_s"])
        print(f"run {run}: {figures['rows']:,} rows in {figures['seconds']:.1f} s = "
              f"{figures['rows_per_s']:,.0f} rows/s (events {figures.get('events', 0):,}, "
              f"sessions {figures.get('sessions', 0):,})", flush=True)
    if args.runs > 1:
        print(f"median of {args.runs}: {statistics.median(rates):,.0f} rows/s into chdb "
              f"({args.events:,} events, batch_rows {args.batch_rows:,})")


if __name__ == "__main__":
    main()

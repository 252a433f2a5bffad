"""Long fuzz run: hostile requests against the real server, with the invariants of the fuzz suite.

Starts `python -m appliance serve` on a free port of 127.0.0.1 with a fresh temporary DuckDB and
sends `--requests` requests from `--clients` threads, each drawn by a seeded generator from
`tests/hostile.py` (mixed batches of good and hostile rows, broken envelopes, gzip bombs and
odd encodings, bad credentials, odd admin queries, invalid UTF-8, large batches). It stops by
itself after `--requests` or `--max-minutes`, whichever comes first, then checks readiness,
stops the server with SIGTERM and reads the DuckDB file: every accepted row stored exactly once,
nothing of a refused row stored. Prints one line per request kind and the totals:

    .venv/bin/python bench/fuzz.py --requests 100000
    .venv/bin/python bench/fuzz.py --requests 100000 --server-python /path/to/production/venv/bin/python

Invariants: no 5xx; no request without an HTTP answer and no server exit (crashes); outcomes
add up; good rows of a mixed batch accepted; the stored state as answered; peak RSS of the
server process (sampled every 0.2 s) at most `--max-rss-mb`.
"""

from __future__ import annotations

import argparse
import collections
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.hostile import CLIENT_ID, CLIENT_SECRET, STORED_IDS_SQL, Generator, Ledger, exchange  # noqa: E402


def _start(folder: Path, memory_limit: str, python: str) -> tuple[subprocess.Popen[str], str, list[str]]:
    (folder / "config.toml").write_text(
        '[server]\nhost = "127.0.0.1"\nport = 0\n[storage]\npath = "var/fuzz.duckdb"\ncache_dir = "var/cache"\n'
        f'min_free_disk_bytes = 0\nmemory_limit = "{memory_limit}"\n'
        f'[[projects]]\nid = "demo"\nclient_id = "{CLIENT_ID}"\nclient_secret = "{CLIENT_SECRET}"\n'
    )
    process = subprocess.Popen([python, "-m", "appliance", "serve", "--config", str(folder / "config.toml")],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    output: list[str] = []
    url = ""
    for line in process.stdout:
        output.append(line)
        if line.startswith("gateway listening on "):
            url = line.split()[-1]
            break
    if not url:
        raise SystemExit("gateway did not start:\n" + "".join(output))

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url, output
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("gateway never became ready")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--max-minutes", type=float, default=60.0)
    parser.add_argument("--max-rss-mb", type=float, default=400.0)
    # DuckDB's cache grows with the data stored, up to storage.memory_limit (the gateway's default
    # here; the run prints it): the RSS bound is about what requests cost.
    parser.add_argument("--duckdb-memory-limit", default="64MB")
    # The interpreter that runs the server. This one has the test extras (chdb, and pandas with
    # it, which DuckDB imports once it sees it: ~50 MB more RSS); a production install has neither
    # (deploy/requirements.txt), so give that venv's python to measure what a site box runs.
    parser.add_argument("--server-python", default=sys.executable)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="gateway-fuzz-"))
    process, url, output = _start(folder, args.duckdb_memory_limit, args.server_python)
    host, port = url.removeprefix("http://").rsplit(":", 1)
    server = psutil.Process(process.pid)
    ledger = Ledger()
    lock = threading.Lock()
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    crashes: list[str] = []
    remaining = [args.requests]
    deadline = time.monotonic() + args.max_minutes * 60
    peak_rss = [0]
    timeline: list[tuple[float, int, int]] = []  # (seconds, requests done, peak RSS of that minute)
    stop = threading.Event()

    def sample_rss() -> None:
        minute_peak, next_mark = 0, time.monotonic() + 60
        while not stop.is_set():
            try:
                rss = server.memory_info().rss
            except psutil.Error:
                return
            peak_rss[0] = max(peak_rss[0], rss)
            minute_peak = max(minute_peak, rss)
            if time.monotonic() >= next_mark:
                timeline.append((next_mark - started, args.requests - remaining[0], minute_peak))
                minute_peak, next_mark = 0, next_mark + 60
            time.sleep(0.2)

    def client(number: int) -> None:
        generator = Generator(random.Random(args.seed * 1000 + number), prefix=f"c{number}")
        while time.monotonic() < deadline:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            case = generator.case()
            try:
                status, body = exchange(host, int(port), case, timeout=120)
            except (OSError, ConnectionError) as exc:
                with lock:
                    crashes.append(f"{case.kind}: no answer ({exc})")
                    counts[case.kind]["no answer"] += 1
                if process.poll() is not None:
                    return
                continue
            with lock:
                ledger.check(case, status, body)
                counts[case.kind]["requests"] += 1
                counts[case.kind][f"{status // 100}xx"] += 1

    started = time.monotonic()
    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    workers = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    stop.set()
    sampler.join()

    exited = process.poll()
    if exited is not None:
        crashes.append(f"server exited with {exited}")
    ready = exited is None and httpx.get(f"{url}/readyz", timeout=10).status_code == 200
    if exited is None:
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
        if code != 0:
            crashes.append(f"graceful stop exited {code}")
    with duckdb.connect(str(folder / "var" / "fuzz.duckdb"), read_only=True) as connection:
        stored = dict(connection.execute(STORED_IDS_SQL).fetchall())
    ledger.check_stored(stored)
    if not ready:
        ledger.violations.append("server not ready afterwards")
    tracebacks = sum("Traceback" in line for line in output)

    total = collections.Counter[str]()
    print(f"{'kind':<26}{'requests':>10}{'2xx':>9}{'4xx':>9}{'5xx':>7}{'no answer':>11}")
    for kind in sorted(counts):
        c = counts[kind]
        total.update(c)
        print(f"{kind:<26}{c['requests']:>10}{c['2xx']:>9}{c['4xx']:>9}{c['5xx']:>7}{c['no answer']:>11}")
    print(f"{'total':<26}{total['requests']:>10}{total['2xx']:>9}{total['4xx']:>9}{total['5xx']:>7}"
          f"{total['no answer']:>11}")
    print(f"\nrequests: {total['requests']} in {elapsed:.0f} s ({total['requests'] / elapsed:.0f}/s), "
          f"{args.clients} clients, seed {args.seed}")
    print(f"rows accepted and stored: {len(ledger.accepted)}; refused rows tracked: {len(ledger.refused)}")
    print(f"5xx: {total['5xx']}   crashes: {len(crashes)}   invariant violations: {len(ledger.violations)}   "
          f"server tracebacks logged: {tracebacks}")
    print(f"peak RSS of the server: {peak_rss[0] / 2**20:.0f} MB (limit {args.max_rss_mb:.0f} MB); "
          f"ready afterwards: {ready}; storage.memory_limit = {args.duckdb_memory_limit}; "
          f"server interpreter: {'this one' if args.server_python == sys.executable else args.server_python}")
    # Growth over time tells a leak from a spike: each minute's peak, with the requests sent by then.
    print("RSS by minute (MB): " + ", ".join(f"{int(t // 60)}m:{rss / 2**20:.0f}" for t, _, rss in timeline))
    for line in (crashes + ledger.violations)[:20]:
        print("  !", line)
    errors = [n for n, line in enumerate(output) if " ERROR " in line or line.startswith("Traceback")]
    if errors:
        print("first server error:\n" + "".join(output[errors[0] : errors[0] + 40]))
    shutil.rmtree(folder, ignore_errors=True)
    failed = total["5xx"] or crashes or ledger.violations or peak_rss[0] > args.max_rss_mb * 2**20
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

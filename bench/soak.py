"""Soak: mixed load for a bounded time, with upstream outages, SIGTERM and kill -9 restarts.

Starts the test-only ClickHouse front (`tests/upstream_front.py`, chdb behind ClickHouse's HTTP
interface, able to refuse, answer 500, hang or drop answers after committing), creates the
upstream tables, and runs the real gateway on 127.0.0.1 forwarding to it every 2 s. For
`--minutes`, `--clients` threads post batches (mostly good rows with unique `__insertId`s, some
hostile rows from `tests/hostile.py`); a chaos thread turns upstream faults on and off and, in
the first 60% of the run, restarts the gateway with SIGTERM or SIGKILL. The last 40% is one
uninterrupted process, whose RSS (and DuckDB's share of it, from `/metrics`) is sampled to show
it stays flat: medians over thirds of its life after its first two minutes. At the end the
upstream is healed, everything is forwarded, and both stores are checked: every acknowledged
event exactly once locally and upstream.

    .venv/bin/python bench/soak.py --minutes 30
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sync.clickhouse import Upstream  # noqa: E402
from tests.e2e.conftest import GatewayServer  # noqa: E402
from tests.helpers import query, write_config  # noqa: E402
from tests.hostile import AUTH, PHONE_UA, Generator  # noqa: E402
from tests.openpanel_tables import create_upstream_tables  # noqa: E402

FAULTS = ("refuse", "error500", "hang", "drop_after_commit")


class Soak:
    def __init__(self, folder: Path, args: argparse.Namespace) -> None:
        self.args = args
        self.front = subprocess.Popen([sys.executable, str(REPO / "tests" / "upstream_front.py"), "--path",
                                       str(folder / "chdb")], stdout=subprocess.PIPE, text=True)
        assert self.front.stdout is not None
        self.front_url = self.front.stdout.readline().split()[-1]
        self.upstream = Upstream(self.front_url, "openpanel", timeout_seconds=120)
        create_upstream_tables(self.upstream, "upstream-init")
        write_config(folder, upstream={"url": self.front_url, "timeout_seconds": 2.0},
                     sync={"interval_seconds": 2.0, "batch_rows": 5000},
                     storage={"checkpoint_wal_bytes": 8 * 1024 * 1024})
        self.gateway = GatewayServer(folder).start()
        self.lock = threading.Lock()
        self.acknowledged: set[str] = set()
        self.counts = {"requests": 0, "202": 0, "503": 0, "other 4xx": 0, "5xx": 0, "no answer": 0}
        self.events: list[str] = []
        self.rss: list[tuple[float, int, int, int]] = []  # elapsed s, pid, RSS, DuckDB's memory
        self.restarting = threading.Event()
        self.started = time.monotonic()
        self.stop = threading.Event()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def client(self, number: int) -> None:
        rng = random.Random(number)
        generator = Generator(rng, prefix=f"soak{number}")
        counter = 0
        with httpx.Client(timeout=30) as http:
            while not self.stop.is_set():
                rows: list[str] = []  # JSON text of each item (hostile ones may hold lone surrogate escapes)
                ids: dict[int, str] = {}
                for index in range(rng.randint(20, 400)):
                    if rng.random() < 0.05:
                        rows.append(generator.hostile_row()[0] if rng.random() < 0.5 else '{"type": "x"}')
                        continue
                    counter += 1
                    insert_id = f"soak-{number}-{counter}"
                    ids[index] = insert_id
                    rows.append(json.dumps({"type": "track", "payload": {"name": "soak", "properties": {
                        "__insertId": insert_id, "screen": rng.choice(["a", "b", "c"]), "n": counter}}}))
                url = self.gateway.url
                try:
                    response = http.post(f"{url}/track/batch", content=('{"events":[' + ",".join(rows) + "]}").encode(),
                                         headers={**AUTH, "user-agent": PHONE_UA})
                except httpx.HTTPError:
                    with self.lock:
                        self.counts["requests"] += 1
                        self.counts["no answer"] += 1
                    time.sleep(0.2)
                    continue
                with self.lock:
                    self.counts["requests"] += 1
                    status = response.status_code
                    key = {202: "202", 503: "503"}.get(status, "5xx" if status >= 500 else "other 4xx")
                    self.counts[key] += 1
                    if status == 202:
                        rejected = {row["index"] for row in response.json()["rejected"]}
                        self.acknowledged.update(i for index, i in ids.items() if index not in rejected)
                time.sleep(rng.uniform(0, 0.3))

    def chaos(self) -> None:
        rng = random.Random(99)
        restart_until = self.args.minutes * 60 * 0.6
        # Restarts alternate SIGTERM and SIGKILL, between upstream faults, so a short run has both.
        plan = ["fault", "sigterm", "fault", "kill"]
        step = 0
        while not self.stop.wait(rng.uniform(20, 40)):
            action = plan[step % len(plan)] if self.elapsed() < restart_until else "fault"
            step += 1
            if action == "fault":
                mode = rng.choice(FAULTS)
                self.note(f"upstream {mode}")
                httpx.post(f"{self.front_url}/__fault", params={"mode": mode})
                self.stop.wait(rng.uniform(5, 20))
                httpx.post(f"{self.front_url}/__fault", params={"mode": "ok"})
                self.note("upstream ok")
            else:
                self.note(f"gateway {action}")
                with self.lock:
                    if action == "kill":
                        self.gateway.kill()
                    else:
                        code = self.gateway.stop(timeout=60)
                        if code != 0:
                            self.note(f"graceful stop exited {code}")
                    self.gateway.start()
                self.note(f"gateway up (pid {self.gateway.pid})")

    def note(self, text: str) -> None:
        self.events.append(f"{self.elapsed() / 60:6.2f} min  {text}")

    def sample(self) -> None:
        while not self.stop.wait(15):
            try:
                rss = psutil.Process(self.gateway.pid).memory_info().rss
                self.rss.append((self.elapsed(), self.gateway.pid, rss, self._duckdb_memory()))
            except (psutil.Error, AssertionError):
                continue

    def _duckdb_memory(self) -> int:
        """`gateway_duckdb_memory_bytes` from /metrics (0 when the gateway does not answer)."""
        try:
            text = httpx.get(f"{self.gateway.url}/metrics", timeout=10).text
        except httpx.HTTPError:
            return 0
        for line in text.splitlines():
            if line.startswith("gateway_duckdb_memory_bytes "):
                return int(float(line.split()[1]))
        return 0

    def run(self) -> int:
        threads = [threading.Thread(target=self.client, args=(n,)) for n in range(self.args.clients)]
        threads += [threading.Thread(target=self.chaos), threading.Thread(target=self.sample)]
        for thread in threads:
            thread.start()
        self.stop.wait(self.args.minutes * 60)
        self.stop.set()
        for thread in threads:
            thread.join()
        httpx.post(f"{self.front_url}/__fault", params={"mode": "ok"})
        return self.finish()

    def finish(self) -> int:
        url = self.gateway.url
        deadline = time.monotonic() + 600
        backlog = -1
        while time.monotonic() < deadline:
            httpx.post(f"{url}/admin/sync", timeout=300)
            status = httpx.get(f"{url}/admin/status", timeout=60).json()
            backlog = sum(int(table.get("rows", 0)) for table in status["backlog"].values())
            if backlog == 0:
                break
        stop_code = self.gateway.stop(timeout=120)
        local = dict(query(self.gateway.database, "SELECT json_extract_string(properties, '$.__insertId') AS i, "
                                                  "count(*) FROM events WHERE name = 'soak' GROUP BY i"))
        remote = dict(self.upstream.query("SELECT properties['__insertId'] AS i, count() FROM openpanel.events "
                                          "WHERE name = 'soak' GROUP BY i"))
        acked = self.acknowledged
        local_missing = sum(1 for i in acked if local.get(i, 0) == 0)
        local_twice = sum(1 for i in acked if local.get(i, 0) > 1)
        remote_missing = sum(1 for i in acked if remote.get(i, 0) == 0)
        remote_twice = sum(1 for i, n in remote.items() if n > 1)
        print("events:")
        for line in self.events:
            print("  " + line)
        print(f"\n{'requests':>9} {'202':>7} {'503':>6} {'4xx':>6} {'5xx':>5} {'no answer':>9}")
        c = self.counts
        print(f"{c['requests']:>9} {c['202']:>7} {c['503']:>6} {c['other 4xx']:>6} {c['5xx']:>5} {c['no answer']:>9}")
        print(f"\nacknowledged events: {len(acked)}; stored locally: {len(local)} ids "
              f"(missing {local_missing}, twice or more {local_twice}); upstream: {len(remote)} ids "
              f"(missing {remote_missing}, twice or more {remote_twice}); backlog at the end: {backlog}; "
              f"final stop exit code: {stop_code}")
        last_pid = self.rss[-1][1] if self.rss else 0
        final = [(t, rss) for t, pid, rss, _ in self.rss if pid == last_pid]
        duckdb_memory = [memory for _, pid, _, memory in self.rss if pid == last_pid]
        print("\nRSS of the last (uninterrupted) gateway process, and DuckDB's share of it:")
        for (t, rss), memory in zip(final, duckdb_memory, strict=True):
            print(f"  {t / 60:6.2f} min  {rss / 2**20:7.1f} MB  (DuckDB {memory / 2**20:6.1f} MB)")
        self._print_trend([t for t, _ in final], [rss for _, rss in final], duckdb_memory)
        failed = local_missing or local_twice or remote_missing or remote_twice or c["5xx"] or backlog or stop_code
        self.upstream.close()
        self.front.kill()
        self.front.wait()
        return 1 if failed else 0


    @staticmethod
    def _print_trend(times: list[float], rss: list[int], duckdb_memory: list[int]) -> None:
        """Medians of the RSS (and of its part outside DuckDB) over thirds of the process's life
        after its first 2 minutes. The RSS swings by ~100 MB with DuckDB's working memory from
        one sample to the next, so a max minus the first sample says little; a growing process
        shows rising medians."""
        settled = [n for n, t in enumerate(times) if t - times[0] >= 120]
        if len(settled) < 6:
            return
        third = len(settled) // 3
        print("after its first 2 minutes, by thirds (medians):")
        for name, part in (("first", settled[:third]), ("middle", settled[third:2 * third]),
                           ("last", settled[2 * third:])):
            print(f"  {name:>6} {times[part[0]] / 60:5.1f}-{times[part[-1]] / 60:5.1f} min: "
                  f"RSS {statistics.median(rss[n] for n in part) / 2**20:6.1f} MB, "
                  f"outside DuckDB {statistics.median(rss[n] - duckdb_memory[n] for n in part) / 2**20:6.1f} MB, "
                  f"DuckDB {statistics.median(duckdb_memory[n] for n in part) / 2**20:6.1f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="gateway-soak-"))
    try:
        return Soak(folder, args).run()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

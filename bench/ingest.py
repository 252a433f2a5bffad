"""Ingest benchmark: the real server, realistic 2000-event batches, several concurrent clients.

Starts `python -m appliance serve` on a free port of 127.0.0.1 with a fresh temporary DuckDB,
posts `/track/batch` bodies (a mix of mobile-app and IoT events, ~0.5-1.5 KB each, every event
with its own `__insertId` and a timestamp within the last hours) from `--clients` threads for
`--seconds` (or at most `--max-requests` requests), then stops the server with SIGTERM.
Prints events/s, p50/p99 batch latency, bytes per event and the server's peak RSS; with
`--runs K` it repeats on a fresh server and prints the median of each figure. With
`--upstream-hangs` the gateway forwards every 2 s to an upstream that never answers, to show
that a dead uplink does not slow ingestion.

`--mix sparse` gives every event its own device (`__deviceId`) and a timestamp within the last
three days, so about one session per event (the costliest case for the writer); `--mix app` (the
default) is the mix above. `--rate N` paces the clients to N events/s in total. A `503` (load
shed, appliance.admission) is counted as refused, with its own latency, and the batch is resent
after `Retry-After`; the server's own time for its 503s is printed beside it (the client's adds
the upload of the unread body). After each run the DuckDB file is read: every acknowledged
event must be stored. Server CPU per accepted event is printed (user + system seconds of the
server process), and the writer's transactions with their mean time (from its `/metrics`).

`--prefill N` seeds the store directly, before the server starts, with N events of the last four
days (inside the duplicate window, which every new event is checked against) in sessions of 20
events, as a busy site's store holds after a few days: throughput should stay near an empty
store's.

    .venv/bin/python bench/ingest.py --runs 3
    .venv/bin/python bench/ingest.py --runs 3 --mix sparse
    .venv/bin/python bench/ingest.py --clients 50 --seconds 30
    .venv/bin/python bench/ingest.py --runs 3 --prefill 20000000

Client and server share the machine, so figures are for comparing changes on the same box.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import duckdb
import httpx
import msgspec
import psutil
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
CLIENT_ID = "5f0c4d1e-8a3b-4c2d-9e7f-1a2b3c4d5e6f"
HEADERS = {
    "openpanel-client-id": CLIENT_ID,
    "openpanel-client-secret": "bench-secret",
    "content-type": "application/json",
}
USER_AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP2A.240805.005)",
    "ShopFloorKiosk/3.4.1 (Linux; Android 11; Elo i3) okhttp/4.12.0",
    "ESP32HTTPClient",
]
# Replaced per event by a fresh uuid hex, so every event is new (never a duplicate).
_ID_MARK = b"X" * 32


def write_config(folder: Path, sections: str = "", storage: str = "") -> Path:
    """A config in `folder`: free port, storage inside it (plus `storage` lines), the bench
    project, plus `sections`."""
    path = folder / "config.toml"
    path.write_text(
        '[server]\nport = 0\n[storage]\npath = "var/bench.duckdb"\ncache_dir = "var/cache"\n'
        f"min_free_disk_bytes = 0\n{storage}\n{sections}\n[[projects]]\nid = \"bench\"\n"
        f'client_id = "{CLIENT_ID}"\nclient_secret = "bench-secret"\n'
    )
    return path


def _templates(count: int = 400, mix: str = "app") -> list[bytes]:
    """Encoded events with an id placeholder: app screens, taps, purchases, sensor readings.

    In the sparse mix the placeholder is also the event's `__deviceId` (a device per event) and
    timestamps spread over three days."""
    rng = random.Random(7)
    now = dt.datetime.now(dt.UTC)
    spread_seconds = 3 * 86400 if mix == "sparse" else 6 * 3600
    encoded = []
    for n in range(count):
        when = (now - dt.timedelta(seconds=rng.randint(0, spread_seconds))).isoformat(timespec="milliseconds")
        common = {
            "__insertId": _ID_MARK.decode(),
            "__timestamp": when.replace("+00:00", "Z"),
            "app_version": f"3.{rng.randint(0, 9)}.{rng.randint(0, 20)}",
            "locale": "de-DE",
            "network": rng.choice(["wifi", "cellular", "ethernet"]),
        }
        kind = n % 4
        if kind == 0:
            name, props = (
                "screen_view",
                {
                    "__path": rng.choice(
                        ["HomeScreen", "CartScreen", "https://shop.example.com/catalog/shoes?utm_source=google"]
                    ),
                    "__referrer": rng.choice(["", "https://www.google.de/", "https://m.facebook.com/"]),
                    "__title": "Catalog",
                    "previous_screen": "SplashScreen",
                    "load_ms": rng.randint(50, 900),
                    "experiment": {"id": "exp-42", "arm": "b"},
                },
            )
        elif kind == 1:
            name, props = (
                "button_tap",
                {
                    "button": "add_to_cart",
                    "sku": f"SKU-{rng.randint(1000, 9999)}",
                    "position": {"x": rng.randint(0, 1080), "y": rng.randint(0, 2400)},
                    "screen": "ProductScreen",
                    "session_depth": rng.randint(1, 30),
                },
            )
        elif kind == 2:
            name, props = (
                "purchase",
                {
                    "cart": {
                        "items": rng.randint(1, 9),
                        "total": round(rng.uniform(5, 400), 2),
                        "skus": [f"SKU-{rng.randint(1000, 9999)}" for _ in range(3)],
                    },
                    "currency": "EUR",
                    "payment": {"method": "card", "wallet": "none"},
                    "store": {"id": "store-017", "region": "north", "till": 4},
                    "loyalty": {"member": True, "tier": "gold", "points": rng.randint(0, 9000)},
                },
            )
        else:
            name, props = (
                "reading",
                {
                    "__deviceId": f"sensor-{rng.randint(0, 99):04d}",
                    "temperature_c": round(rng.uniform(-5, 35), 2),
                    "humidity_pct": round(rng.uniform(10, 90), 1),
                    "battery_v": round(rng.uniform(3.1, 4.2), 3),
                    "rssi_dbm": -rng.randint(40, 90),
                    "firmware": {"version": "1.8.3", "build": "2026-10-02", "channel": "stable"},
                    "location": {"zone": "cold-store", "rack": rng.randint(1, 40)},
                    "errors": [],
                    "uptime_s": rng.randint(0, 10**6),
                },
            )
        props.update(common)
        if mix == "sparse":
            props["__deviceId"] = _ID_MARK.decode()
        props["context"] = _sdk_context(rng, sensor=kind == 3)
        event = {"type": "track", "payload": {"name": name, "properties": props}}
        if kind in (1, 2):
            event["payload"]["profileId"] = f"user-{rng.randint(1, 500)}"
        encoded.append(msgspec.json.encode(event))
    return encoded


def _sdk_context(rng: random.Random, *, sensor: bool) -> dict[str, object]:
    """What SDKs and firmware attach to every event; most of a real event's bytes are here."""
    if sensor:
        return {
            "hardware": {
                "chip": "ESP32-S3",
                "flash_mb": 8,
                "psram_mb": 2,
                "mac": f"24:6f:28:{rng.randint(0, 255):02x}:10:9c",
            },
            "network": {
                "ssid": "plant-iot",
                "channel": rng.choice([1, 6, 11]),
                "ip": f"10.20.{rng.randint(0, 9)}.{rng.randint(2, 250)}",
            },
            "boot": {"reason": rng.choice(["power_on", "watchdog", "ota"]), "count": rng.randint(1, 400)},
            "calibration": {"temperature_offset": -0.4, "humidity_offset": 1.2, "date": "2026-09-14"},
            "queue": {"buffered": rng.randint(0, 5000), "dropped": 0, "oldest_age_s": rng.randint(0, 86400)},
        }
    return {
        "app": {"name": "ShopApp", "build": rng.randint(41000, 41299), "namespace": "com.example.shop"},
        "device": {
            "manufacturer": rng.choice(["Apple", "Google", "Samsung"]),
            "model": rng.choice(["iPhone14,2", "Pixel 8", "SM-S911B"]),
            "screen": {"width": 1170, "height": 2532, "density": 3},
            "orientation": "portrait",
            "dark_mode": rng.random() < 0.5,
        },
        "locale": {"language": "de", "region": "DE", "timezone": "Europe/Berlin", "currency": "EUR"},
        "network": {
            "type": rng.choice(["wifi", "cellular"]),
            "carrier": rng.choice(["Telekom", "Vodafone", "O2"]),
            "offline_queue": rng.randint(0, 300),
        },
        "consent": {"analytics": True, "marketing": rng.random() < 0.3},
        "campaign": {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "autumn-sale"},
    }


def _batch_body(templates: list[bytes], size: int, rng: random.Random) -> bytes:
    events = [rng.choice(templates).replace(_ID_MARK, uuid.uuid4().hex.encode()) for _ in range(size)]
    return b'{"events":[' + b",".join(events) + b"]}"


class Server:
    """The gateway as a subprocess on a free port."""

    def __init__(self, folder: Path, python: str = sys.executable, log: Path | None = None) -> None:
        config = folder / "config.toml"
        if not config.exists():
            write_config(folder)
        self.process = subprocess.Popen(
            [python, "-m", "appliance", "serve", "--config", str(config)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        seen = []
        for line in self.process.stdout:  # log lines come first; "listening" once it is ready
            if line.startswith("gateway listening on "):
                break
            seen.append(line)
        else:
            raise RuntimeError("server did not start:\n" + "".join(seen))
        self.url = line.split()[-1]
        # Keep the pipe drained; with `log`, into that file (appended: one file for several runs).
        threading.Thread(target=self._drain, args=([*seen, line], log), daemon=True).start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("server never became ready")

    def _drain(self, head: list[str], log: Path | None) -> None:
        assert self.process.stdout is not None
        if log is None:
            self.process.stdout.read()
            return
        with log.open("a") as file:
            file.writelines(head)
            for line in self.process.stdout:
                file.write(line)

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        """User + system CPU the server has used so far (it shares the cores with the clients)."""
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


class WalWatcher:
    """Samples the size of the store's WAL every 100 ms until stopped: the largest one shows
    whether the scheduled checkpoints keep up with the load."""

    def __init__(self, database: Path) -> None:
        self.largest_bytes = 0
        self._wal = Path(f"{database}.wal")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            with contextlib.suppress(FileNotFoundError):  # none right after a checkpoint
                self.largest_bytes = max(self.largest_bytes, self._wal.stat().st_size)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.largest_bytes


def _hanging_upstream(folder: Path) -> tuple[subprocess.Popen[str], str]:
    """The test suite's ClickHouse HTTP front, told to hang every request (a dead-slow uplink)."""
    front = subprocess.Popen([sys.executable, str(REPO / "tests" / "upstream_front.py"), "--path", str(folder / "ch")],
                             stdout=subprocess.PIPE, text=True)
    assert front.stdout is not None
    url = front.stdout.readline().split()[-1]
    httpx.post(f"{url}/__fault", params={"mode": "hang"})
    return front, url


def run_once(args: argparse.Namespace, templates: list[bytes]) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    storage = f'memory_limit = "{args.memory_limit}"\n' if args.memory_limit else ""
    storage += "".join(f"{setting}\n" for setting in args.storage_setting)
    limits = f"[limits]\nmax_pending_events = {args.max_pending_events}\n" if args.max_pending_events else ""
    write_config(folder, limits, storage=storage)
    front = None
    if args.upstream_hangs:
        # Forwarding on, every 2 s, into an upstream that never answers (5 s timeout).
        front, url = _hanging_upstream(folder)
        write_config(folder, f'[upstream]\nurl = "{url}"\ntimeout_seconds = 5.0\n[sync]\ninterval_seconds = 2.0\n'
                     + limits, storage=storage)
    if args.prefill:
        started = time.perf_counter()
        prefill(folder / "var" / "bench.duckdb", args.prefill)
        print(f"  prefilled {args.prefill:,} events in {time.perf_counter() - started:.0f} s", flush=True)
    server = Server(folder, args.server_python, args.server_log)
    latencies: list[float] = []
    refused_latencies: list[float] = []
    accepted, failures, body_bytes = [0], [], [0]
    lock = threading.Lock()
    budget = iter(range(args.max_requests))
    deadline = time.monotonic() + args.seconds
    # --rate: each client sends one batch every `interval` seconds, on a fixed schedule.
    interval = args.clients * args.batch_size / args.rate if args.rate else 0.0

    def client(number: int) -> None:
        rng = random.Random(number)
        headers = {**HEADERS, "user-agent": USER_AGENTS[number % len(USER_AGENTS)]}
        next_send = time.monotonic() + interval * number / args.clients
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            while time.monotonic() < deadline and next(budget, None) is not None:
                if interval:
                    time.sleep(max(0.0, next_send - time.monotonic()))
                    next_send += interval
                body = _batch_body(templates, args.batch_size, rng)
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    try:
                        response = http.post("/track/batch", content=body)
                    except httpx.HTTPError as exc:  # counted, never silently missing from the totals
                        with lock:
                            failures.append(f"{type(exc).__name__}: {exc}")
                        break
                    elapsed = time.perf_counter() - started
                    if response.status_code == 503 and "retry-after" in response.headers:
                        with lock:  # shed: the same batch again after Retry-After, as an SDK would
                            refused_latencies.append(elapsed)
                        time.sleep(float(response.headers["retry-after"]))
                        continue
                    with lock:
                        latencies.append(elapsed)
                        body_bytes[0] += len(body)
                        if response.status_code == 202 and response.json()["accepted"] == args.batch_size:
                            accepted[0] += args.batch_size
                        else:
                            failures.append(f"{response.status_code} {response.text[:200]}")
                    break

    wal = WalWatcher(folder / "var" / "bench.duckdb")
    try:
        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - started
        peak_rss, server_cpu = server.peak_rss_mib(), server.cpu_seconds()
        refused_in_server_ms, mean_commit_ms, commits = _server_figures(server.url)
    finally:
        largest_wal = wal.stop()
        exit_code = server.stop()
        stored = _stored_events(folder / "var" / "bench.duckdb")
        # The whole file (sessions and profiles too) after the gateway's last checkpoint.
        store_bytes = sum(path.stat().st_size for path in (folder / "var").glob("bench.duckdb*"))
        if front is not None:
            front.kill()
            front.wait()
            if front.stdout is not None:
                front.stdout.close()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    for failure in failures[:5]:
        print(f"  failed batch: {failure}")
    if stored < accepted[0]:
        print(f"  !! {accepted[0] - stored} acknowledged events are not stored")
    return {
        "events_per_s": accepted[0] / wall,
        "p50_ms": _percentile_ms(latencies, 0.50),
        "p99_ms": _percentile_ms(latencies, 0.99),
        "peak_rss_mib": peak_rss,
        "server_cpu_s": server_cpu,
        "cpu_us_per_event": 1e6 * server_cpu / max(1, accepted[0]),
        "refused": len(refused_latencies),
        "refused_p99_ms": _percentile_ms(refused_latencies, 0.99),
        "refused_p99_in_server_ms": refused_in_server_ms,
        "mean_commit_ms": mean_commit_ms,
        "commits": commits,
        "missing": accepted[0] - stored,
        "bytes_per_event": body_bytes[0] / max(1, len(latencies) * args.batch_size),
        "store_bytes_per_event": store_bytes / max(1, stored),
        "largest_wal_mb": largest_wal / 1e6,
        "events": accepted[0],
        "failed_batches": len(failures),
        "exit_code": exit_code,
    }


_SEEDED = "seeded_view"  # the name of prefilled events, which `_stored_events` does not count


def prefill(database: Path, events: int) -> None:
    """`events` events (and their sessions, 20 events each) written straight into a new store."""
    sys.path.insert(0, str(REPO))
    from storage.database import open_database

    connection = open_database(str(database), memory_limit="2GB")
    try:
        # Spread evenly over the last four days; received when they happened.
        spread = "now()::TIMESTAMP - INTERVAL 4 DAY + to_milliseconds((i * 345600000 // $n)::BIGINT)"
        connection.execute(f"""
            INSERT INTO events BY NAME
            SELECT i AS seq, uuid() AS id, '{_SEEDED}' AS name, 'bench' AS project_id,
                   'seed-device-' || (i // 20) AS device_id, 'seed-device-' || (i // 20) AS profile_id,
                   'seed-session-' || (i // 20) AS session_id, '/p/' || (i % 500) AS path,
                   'https://shop.example.com' AS origin, 'iOS' AS os, 'mobile' AS device,
                   '{{"__insertId":"' || i || '","screen":"Product","app_version":"3.6.12"}}' AS properties,
                   {spread} AS created_at, {spread} AS received_at
            FROM range(1, $n + 1) t(i)""", {"n": events})
        connection.execute(f"""
            INSERT INTO sessions BY NAME
            SELECT s AS seq, 'seed-session-' || s AS id, 'bench' AS project_id, 'seed-device-' || s AS device_id,
                   'seed-device-' || s AS profile_id, {spread.replace("i *", "s * 20 *")} AS created_at,
                   {spread.replace("i *", "s * 20 *")} AS ended_at, 20 AS event_count, 20 AS screen_view_count,
                   false AS is_bounce, false AS is_live, true AS closed,
                   {spread.replace("i *", "s * 20 *")} AS last_received_at
            FROM range(0, $n // 20 + 1) t(s)""", {"n": events})
        connection.execute("CHECKPOINT")
    finally:
        connection.close()


def _stored_events(database: Path) -> int:
    """Events the clients sent that are in the store (session events are the gateway's own)."""
    if not database.exists():
        return 0
    with duckdb.connect(str(database), read_only=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM events WHERE name IN ('screen_view', 'button_tap', 'purchase', 'reading')").fetchone()
    return int(row[0]) if row else 0


def _server_figures(url: str) -> tuple[float, float, int]:
    """From the server's `/metrics`: the upper bound of the histogram bucket holding the p99 of its
    own time for its 503s (`gateway_refused_request_duration_seconds`; the client's latency adds
    the upload of the body the server did not read, which the server drains after answering, and
    the client threads' wait for each other), and its writer's mean time per transaction (a group
    commit, `gateway_commit_duration_seconds`) in ms, with the number of transactions."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    buckets: list[tuple[float, float]] = []
    commit = {"sum": 0.0, "count": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name == "gateway_refused_request_duration_seconds":
            buckets = sorted((float(sample.labels["le"]), sample.value) for sample in family.samples
                             if sample.name.endswith("_bucket") and sample.labels.get("route") == "/track/batch")
        if family.name == "gateway_commit_duration_seconds":
            for sample in family.samples:
                for kind in commit:
                    if sample.name.endswith(f"_{kind}"):
                        commit[kind] = sample.value
    commits = int(commit["count"])
    mean_commit_ms = 1000 * commit["sum"] / commits if commits else float("nan")
    if not buckets or buckets[-1][1] == 0:
        return float("nan"), mean_commit_ms, commits
    total = buckets[-1][1]
    return 1000 * next(bound for bound, count in buckets if count >= 0.99 * total), mean_commit_ms, commits


def _refusals(result: dict[str, float]) -> str:
    if not result["refused"]:
        return "0 refused"
    return (f"{result['refused']} refused (503, p99 {result['refused_p99_ms']:.0f} ms; "
            f"in the server p99 <= {result['refused_p99_in_server_ms']:.0f} ms)")


def _percentile_ms(latencies: list[float], fraction: float) -> float:
    if not latencies:
        return float("nan")
    ordered = sorted(latencies)
    return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-requests", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    parser.add_argument("--upstream-hangs", action="store_true",
                        help="forward to an upstream that never answers (ingest must not slow down)")
    parser.add_argument("--mix", choices=("app", "sparse"), default="app",
                        help="sparse: a device per event, timestamps over 3 days (about one session per event)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="events/s of all clients together (0: as fast as they can)")
    parser.add_argument("--server-python", default=sys.executable, help="the interpreter that runs the server")
    parser.add_argument("--memory-limit", default="", help="storage.memory_limit (DuckDB); default: the gateway's")
    parser.add_argument("--storage-setting", action="append", default=[], metavar="KEY = VALUE",
                        help="a [storage] line of the server's config, e.g. 'checkpoint_interval_seconds = 2'")
    parser.add_argument("--prefill", type=int, default=0, help="seed the store with this many events first")
    parser.add_argument("--max-pending-events", type=int, default=0,
                        help="limits.max_pending_events (load shedding); default: the gateway's")
    parser.add_argument("--server-log", type=Path, help="append the server's log to this file")
    args = parser.parse_args()
    templates = _templates(mix=args.mix)
    results = []
    for run in range(1, args.runs + 1):
        result = run_once(args, templates)
        results.append(result)
        print(
            f"run {run}: {result['events_per_s']:,.0f} events/s, p50 {result['p50_ms']:.0f} ms, "
            f"p99 {result['p99_ms']:.0f} ms, peak RSS {result['peak_rss_mib']:.0f} MiB, "
            f"server CPU {result['server_cpu_s']:.1f} s ({result['cpu_us_per_event']:.0f} us/event), "
            f"{result['commits']:,} commits of {result['mean_commit_ms']:.0f} ms on average, "
            f"{_refusals(result)}, {result['missing']} acknowledged but not stored, "
            f"{result['bytes_per_event']:.0f} B/event sent, {result['store_bytes_per_event']:.0f} B/event stored, "
            f"WAL up to {result['largest_wal_mb']:,.0f} MB, "
            f"{result['events']:,} events, {result['failed_batches']} failed batches, server exit {result['exit_code']}"
        )
    if args.runs > 1:
        median = {
            key: statistics.median(r[key] for r in results)
            for key in ("events_per_s", "p50_ms", "p99_ms", "peak_rss_mib", "cpu_us_per_event", "largest_wal_mb")
        }
        print(
            f"median of {args.runs}: {median['events_per_s']:,.0f} events/s, p50 {median['p50_ms']:.0f} ms, "
            f"p99 {median['p99_ms']:.0f} ms, peak RSS {median['peak_rss_mib']:.0f} MiB, "
            f"server CPU {median['cpu_us_per_event']:.0f} us/event, WAL up to {median['largest_wal_mb']:,.0f} MB "
            f"({args.mix} mix, {args.clients} clients x {args.batch_size}-event batches, {args.seconds:.0f} s"
            f"{f', {args.rate:.0f} events/s offered' if args.rate else ''}"
            f"{f', store prefilled with {args.prefill:,} events' if args.prefill else ''})"
        )


if __name__ == "__main__":
    main()

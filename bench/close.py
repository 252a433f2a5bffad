"""Session closer benchmark: `session_end` rows for a backlog of quiet sessions.

Seeds a new store with `--sessions` open sessions that went quiet during the last four days (as
a site's store holds after a fleet's offline days were sent at once), then runs the closer's
transactions (`Store.close_sessions`, `--batch` sessions each, as the gateway's
`close_quiet_sessions` does on its writer) `--transactions` times, and prints the median time
per transaction and the sessions closed per second; with `--runs K`, on a fresh store each time,
the medians of the runs. Every closed session must have exactly one `session_end`.

    .venv/bin/python bench/close.py --runs 3
    .venv/bin/python bench/close.py --sessions 1000000 --transactions 10

Figures are for comparing changes on the same box.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_MS = 30 * 60_000


def seed(database: Path, sessions: int) -> None:
    """`sessions` open sessions, ended evenly over the last four days, written straight into a new store."""
    from storage.database import open_database

    connection = open_database(str(database), memory_limit="2GB")
    try:
        ended = "now()::TIMESTAMP - INTERVAL 4 DAY + to_milliseconds((s * 345600000 // $n)::BIGINT)"
        connection.execute(f"""
            INSERT INTO sessions BY NAME
            SELECT s AS seq, 'quiet-session-' || s AS id, 'bench' AS project_id, 'device-' || s AS device_id,
                   CASE WHEN s % 3 = 0 THEN 'user-' || (s % 500) ELSE 'device-' || s END AS profile_id,
                   {ended} - INTERVAL 4 MINUTE AS created_at, {ended} AS ended_at, 240000 AS duration,
                   3 AS event_count, s % 3 AS screen_view_count, s % 3 <= 1 AS is_bounce,
                   '/p/' || (s % 50) AS entry_path, '/p/' || (s % 70) AS exit_path,
                   'https://shop.example.com' AS entry_origin, 'https://shop.example.com' AS exit_origin,
                   CASE WHEN s % 4 = 0 THEN 'https://www.google.de/' ELSE '' END AS referrer,
                   CASE WHEN s % 4 = 0 THEN 'Google' ELSE '' END AS referrer_name,
                   CASE WHEN s % 4 = 0 THEN 'search' ELSE '' END AS referrer_type,
                   'DE' AS country, 'Berlin' AS city, 'Berlin' AS region, 13.4 AS longitude, 52.5 AS latitude,
                   'iOS' AS os, '17.5' AS os_version, 'mobile' AS device, 'Apple' AS brand, 'iPhone' AS model,
                   CASE WHEN s % 10 = 0 THEN ['store-017'] ELSE [] END AS groups,
                   false AS is_live, false AS closed, {ended} AS last_received_at
            FROM range(0, $n) t(s)""", {"n": sessions})
        connection.execute("CHECKPOINT")
    finally:
        connection.close()


def run_once(args: argparse.Namespace) -> dict[str, float]:
    from appliance.settings import StorageSettings
    from storage.database import open_database
    from storage.locks import SessionStartLocks
    from storage.store import Store

    with tempfile.TemporaryDirectory(prefix="gateway-close-") as folder:
        database = Path(folder) / "close.duckdb"
        started = time.perf_counter()
        seed(database, args.sessions)
        print(f"  seeded {args.sessions:,} quiet sessions in {time.perf_counter() - started:.0f} s", flush=True)
        defaults = StorageSettings()  # the gateway's DuckDB memory and threads
        store = Store(str(database), open_database(str(database), defaults.memory_limit, defaults.threads),
                      SessionStartLocks(str(Path(folder) / "cache"), expire_seconds=86_400), 86_400_000)
        try:
            now_ms = int(time.time() * 1000)
            seconds = []
            closed = 0
            for _ in range(args.transactions):
                started = time.perf_counter()
                count = store.close_sessions(now_ms, TIMEOUT_MS, args.batch)
                seconds.append(time.perf_counter() - started)
                closed += count
                if count < args.batch:
                    break
            ends = store.connection.execute(
                "SELECT count(*), count(DISTINCT session_id) FROM events WHERE name = 'session_end'").fetchone()
        finally:
            store.connection.close()
    if ends != (closed, closed):
        raise SystemExit(f"{closed} sessions closed, but (session_end rows, sessions) = {ends}")
    per_transaction = statistics.median(seconds)
    return {"ms": per_transaction * 1000, "sessions_per_s": args.batch / per_transaction, "closed": closed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=200_000, help="quiet sessions seeded")
    parser.add_argument("--batch", type=int, default=2_000, help="sessions per transaction (the gateway's)")
    parser.add_argument("--transactions", type=int, default=20)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    results = []
    for run in range(1, args.runs + 1):
        result = run_once(args)
        results.append(result)
        print(f"run {run}: {result['closed']:,.0f} sessions closed, {result['ms']:.0f} ms per transaction of "
              f"{args.batch:,} (median), {result['sessions_per_s']:,.0f} sessions/s", flush=True)
    print(f"median of {args.runs}: {statistics.median(r['ms'] for r in results):.0f} ms per transaction, "
          f"{statistics.median(r['sessions_per_s'] for r in results):,.0f} sessions/s "
          f"({args.sessions:,} quiet sessions stored)")


if __name__ == "__main__":
    main()

"""The real gateway forwarding through a ClickHouse HTTP front that fails like a real server.

The front (`tests/upstream_front.py`) runs over chdb in its own process and can refuse
connections, answer 500, hang, or drop the response after committing an insert.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from sync.clickhouse import Upstream
from tests.e2e.conftest import GatewayServer
from tests.helpers import AUTH, AWKWARD_PROPERTIES, AWKWARD_STORED, PHONE_UA, iso, track, write_config
from tests.openpanel_tables import SCHEMAS, create_upstream_tables

FRONT = Path(__file__).resolve().parents[1] / "upstream_front.py"


class UpstreamFront:
    def __init__(self, folder: Path, schema: str = "upstream-init") -> None:
        self.process = subprocess.Popen([sys.executable, str(FRONT), "--path", str(folder / "chdb")],
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().split()[-1]
        self.upstream = Upstream(self.url, "openpanel")
        create_upstream_tables(self.upstream, schema)

    def fail(self, mode: str) -> None:
        httpx.post(f"{self.url}/__fault", params={"mode": mode})

    def count(self, sql: str) -> list[tuple[Any, ...]]:
        return self.upstream.query(sql)

    def stop(self) -> None:
        self.upstream.close()
        self.process.kill()
        self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()


@pytest.fixture(params=SCHEMAS)
def front(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UpstreamFront]:
    upstream = UpstreamFront(tmp_path, request.param)
    yield upstream
    upstream.stop()


@pytest.fixture
def gateway(tmp_path: Path, front: UpstreamFront) -> Iterator[GatewayServer]:
    write_config(tmp_path, upstream={"url": front.url, "timeout_seconds": 2.0},
                 sync={"interval_seconds": 3600.0, "batch_rows": 1000})
    server = GatewayServer(tmp_path).start()
    yield server
    if server.process is not None:
        server.kill()


def post(gateway: GatewayServer, prefix: str, count: int) -> None:
    body = msgspec.json.encode({"events": [track(f"{prefix}{i}", insert_id=f"{prefix}-{i}") for i in range(count)]})
    response = httpx.post(f"{gateway.url}/track/batch", content=body, headers={**AUTH, "user-agent": PHONE_UA},
                          timeout=30)
    assert response.json()["accepted"] == count


def sync(gateway: GatewayServer) -> dict[str, Any]:
    return dict(httpx.post(f"{gateway.url}/admin/sync", timeout=60).json())


def test_dropped_response_after_commit_makes_no_duplicate(gateway: GatewayServer, front: UpstreamFront) -> None:
    post(gateway, "a", 1500)
    front.fail("drop_after_commit")
    assert sync(gateway)["error"] is not None
    front.fail("ok")
    assert sync(gateway)["error"] is None
    assert front.count("SELECT count(), uniqExact(id) FROM openpanel.events") == [(1501, 1501)]
    assert front.count("SELECT count() FROM openpanel.sessions FINAL") == [(1,)]


@pytest.mark.parametrize("mode", ["refuse", "error500"])
def test_outage_then_recovery(gateway: GatewayServer, front: UpstreamFront, mode: str) -> None:
    front.fail(mode)
    post(gateway, "b", 800)
    failed = sync(gateway)
    assert failed["error"]
    status = httpx.get(f"{gateway.url}/admin/status").json()
    assert status["backlog"]["events"]["rows"] == 801
    front.fail("ok")
    assert sync(gateway)["error"] is None
    assert front.count("SELECT count(), uniqExact(id) FROM openpanel.events") == [(801, 801)]
    assert httpx.get(f"{gateway.url}/admin/status").json()["backlog"]["events"]["rows"] == 0


def test_ingest_keeps_going_while_the_upstream_hangs(gateway: GatewayServer, front: UpstreamFront) -> None:
    post(gateway, "c", 10)
    front.fail("hang")
    stuck: dict[str, Any] = {}
    syncing = threading.Thread(target=lambda: stuck.update(sync(gateway)))
    syncing.start()
    time.sleep(0.3)
    for batch in range(5):
        post(gateway, f"d{batch}-", 2000)  # answered while the sync pass waits on the upstream
    assert httpx.get(f"{gateway.url}/readyz").status_code == 200
    syncing.join(30)
    assert "timed out" in stuck["error"].lower()  # the 2 s upstream timeout, not a stuck job
    front.fail("ok")
    assert sync(gateway)["error"] is None
    assert front.count("SELECT count(), uniqExact(id) FROM openpanel.events") == [(10_011, 10_011)]


def test_every_table_arrives_once_through_every_fault(gateway: GatewayServer, front: UpstreamFront) -> None:
    now = dt.datetime.now(dt.UTC)
    items = [track(f"f{i}", insert_id=f"faults-{i}") for i in range(300)] + [
        {"type": "identify", "payload": {"profileId": "u1", "firstName": "Ada"}},
        {"type": "group", "payload": {"id": "g1", "type": "shop", "name": "North"}},
        {"type": "replay", "payload": {"chunk_index": 0, "events_count": 2, "is_full_snapshot": True,
                                       "started_at": iso(now - dt.timedelta(seconds=1)), "ended_at": iso(now),
                                       "payload": "[]"}}]
    response = httpx.post(f"{gateway.url}/track/batch", content=msgspec.json.encode({"events": items}),
                          headers={**AUTH, "user-agent": PHONE_UA}, timeout=30)
    assert response.json()["accepted"] == len(items)
    for mode in ("refuse", "error500", "drop_after_commit", "hang"):
        front.fail(mode)
        assert sync(gateway)["error"]  # a hang ends with the 2 s upstream timeout
    front.fail("ok")
    for _ in range(4):
        front.fail("drop_after_commit")  # one table after the other: its insert lands, the answer is lost
        sync(gateway)
    front.fail("ok")
    assert sync(gateway)["error"] is None
    assert front.count("SELECT count(), uniqExact(id) FROM openpanel.events") == [(301, 301)]
    assert front.count("SELECT sum(sign), count() FROM openpanel.sessions") == [(1, 1)]
    profiles = front.count("SELECT count(), uniqExact(id, last_seen_at) FROM openpanel.profiles")[0]
    # u1, and the anonymous profile of the device the visit started with
    assert profiles[0] == profiles[1] and front.count("SELECT count() FROM openpanel.profiles FINAL") == [(2,)]
    assert front.count("SELECT count() FROM openpanel.groups") == [(1,)]
    assert front.count("SELECT chunk_index, events_count FROM openpanel.session_replay_chunks") == [(0, 2)]
    status = httpx.get(f"{gateway.url}/admin/status").json()
    assert status["upstream_problems"] == [] and status["quarantined_rows"] == 0
    assert all(entry["rows"] == 0 for entry in status["backlog"].values())


def test_properties_arrive_as_they_were_sent_over_http(gateway: GatewayServer, front: UpstreamFront) -> None:
    """Over HTTP the upstream reads the block through `input()` and parses the JSON text itself."""
    body = msgspec.json.encode({"events": [track("awkward", insert_id="awk-http", **AWKWARD_PROPERTIES)]})
    response = httpx.post(f"{gateway.url}/track/batch", content=body, headers={**AUTH, "user-agent": PHONE_UA},
                          timeout=30)
    assert response.json()["accepted"] == 1
    assert sync(gateway)["error"] is None
    (properties,) = front.count("SELECT properties FROM openpanel.events WHERE name = 'awkward'")[0]
    assert {key: value for key, value in properties.items() if key != "__insertId"} == AWKWARD_STORED

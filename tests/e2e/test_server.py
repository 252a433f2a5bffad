"""The real server on a real socket: limits, durability, duplicates, shutdown, SDK shape."""

from __future__ import annotations

import datetime as dt
import gzip
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.e2e.conftest import GatewayServer
from tests.helpers import AUTH, iso, now_utc, query, track

MIB = 1024 * 1024


def post_batch(server: GatewayServer, events: list[dict[str, Any]], **kwargs: Any) -> httpx.Response:
    body = msgspec.json.encode({"events": events})
    return httpx.post(f"{server.url}/track/batch", content=body, headers=AUTH, timeout=60, **kwargs)


def stored_count(server: GatewayServer) -> int:
    """Stop the server (gracefully) and count events in its file."""
    assert server.stop() == 0
    return int(query(server.database, "SELECT count(*) FROM events")[0][0])


def test_2000_events_with_bad_rows_at_exact_indices(server: GatewayServer) -> None:
    bad = {0: track(""), 49: track("session_start"), 50: track(__ip="not-an-ip"),
           999: {"type": "track", "payload": {"name": 7}}, 1999: {"type": "alias", "payload": {}}}
    events = [bad.get(i, track(f"e{i}", insert_id=f"rows-{i}")) for i in range(2000)]
    response = post_batch(server, events)
    assert response.status_code == 202
    body = response.json()
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [(i, "validation") for i in sorted(bad)]
    assert body["accepted"] == 1995 and body["duplicates"] == 0
    assert server.stop() == 0
    names = {row[0] for row in query(server.database, "SELECT name FROM events")}
    assert names == {f"e{i}" for i in range(2000) if i not in bad}


def test_sync_without_an_upstream_is_a_409_in_the_usual_shape(server: GatewayServer) -> None:
    response = httpx.post(f"{server.url}/admin/sync", timeout=30)
    assert response.status_code == 409
    assert response.json() == {"status": 409, "error": "Conflict",
                               "message": "no upstream configured (upstream.url is empty): nothing to sync"}


def test_limits(server: GatewayServer) -> None:
    too_many = post_batch(server, [track()] * 2001)
    assert too_many.status_code == 400
    assert too_many.json()["message"] == "events: at most 2000 events per request, got 2001"

    # 10 MiB + 1 byte once decompressed, a few KiB on the wire.
    envelope = b'{"events": [' + msgspec.json.encode(track(pad="x" * 100)) + b"]"
    oversize = envelope + b" " * (10 * MIB + 1 - len(envelope) - 1) + b"}"
    assert len(oversize) == 10 * MIB + 1
    response = httpx.post(f"{server.url}/track/batch", content=gzip.compress(oversize),
                          headers={**AUTH, "content-encoding": "gzip"}, timeout=60)
    assert response.status_code == 413
    plain = httpx.post(f"{server.url}/track/batch", content=oversize, headers=AUTH, timeout=60)
    assert plain.status_code == 413
    exactly = oversize[:-2] + b"}"  # 10 MiB exactly is allowed
    assert httpx.post(f"{server.url}/track/batch", content=exactly, headers=AUTH, timeout=60).status_code == 202

    unauthorized = httpx.post(f"{server.url}/track/batch", content=msgspec.json.encode({"events": [track()]}),
                              headers={"openpanel-client-id": AUTH["openpanel-client-id"],
                                       "openpanel-client-secret": "wrong"})
    assert unauthorized.status_code == 401
    assert httpx.post(f"{server.url}/track", json=track(), headers={}).status_code == 401
    assert stored_count(server) == 1


@pytest.fixture(scope="module")
def gzip_bomb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """1 GiB of zeros, gzip-compressed to about 1 MiB (built in bounded memory)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.gz"
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(4 * MIB)
    with path.open("wb") as out:
        for _ in range(256):
            out.write(compressor.compress(block))
        out.write(compressor.flush())
    return path.read_bytes()


@pytest.mark.slow
def test_gzip_bomb_is_refused_quickly_with_bounded_memory(server: GatewayServer, gzip_bomb: bytes) -> None:
    rss_before = server.peak_rss_bytes()
    started = time.monotonic()
    response = httpx.post(f"{server.url}/track/batch", content=gzip_bomb,
                          headers={**AUTH, "content-encoding": "gzip"}, timeout=60)
    elapsed = time.monotonic() - started
    assert response.status_code == 413
    assert "after decompression" in response.json()["message"]
    assert elapsed < 5.0
    # The cap is 10 MiB; inflating the bomb would take 1 GiB.
    assert server.peak_rss_bytes() - rss_before < 64 * MIB
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_timestamps(server: GatewayServer) -> None:
    now = now_utc()
    events = [
        track("four_days", __timestamp=iso(now - dt.timedelta(days=4))),
        track("too_old", __timestamp=iso(now - dt.timedelta(days=5, minutes=1))),
        track("future_59s", __timestamp=iso(now + dt.timedelta(seconds=59))),
        track("future_2min", __timestamp=iso(now + dt.timedelta(minutes=2))),
    ]
    body = post_batch(server, events).json()
    assert body["accepted"] == 3
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [(1, "validation")]
    assert "older than 5 days" in body["rejected"][0]["error"]
    assert server.stop() == 0
    rows = {name: (created, received) for name, created, received in query(
        server.database, "SELECT name, epoch_ms(created_at), epoch_ms(received_at) FROM events")}
    assert rows.keys() == {"four_days", "future_59s", "future_2min"}
    assert rows["four_days"][0] == int((now - dt.timedelta(days=4)).timestamp() * 1000)
    assert rows["future_59s"][0] == int((now + dt.timedelta(seconds=59)).timestamp() * 1000)
    assert rows["future_2min"][0] == rows["future_2min"][1]  # clamped to the receive time


def test_same_batch_twice_is_stored_once(server: GatewayServer) -> None:
    events = [track(f"e{i}", insert_id=f"twice-{i}") for i in range(1000)]
    assert post_batch(server, events).json() == {"accepted": 1000, "duplicates": 0, "rejected": []}
    assert post_batch(server, events).json() == {"accepted": 0, "duplicates": 1000, "rejected": []}
    assert server.stop() == 0
    assert query(server.database, "SELECT count(*), count(DISTINCT id) FROM events") == [(1000, 1000)]


def test_kill_9_right_after_202_loses_nothing(server: GatewayServer) -> None:
    accepted = 0
    for batch in range(5):
        response = post_batch(server, [track(f"b{batch}", insert_id=f"k-{batch}-{i}") for i in range(2000)])
        assert response.status_code == 202
        accepted += response.json()["accepted"]
    server.kill()  # no shutdown code, no checkpoint: only the WAL has the rows
    server.start()
    assert stored_count(server) == accepted == 10_000


def test_duplicates_survive_a_restart(server: GatewayServer) -> None:
    events = [track(f"e{i}", insert_id=f"restart-{i}") for i in range(100)]
    assert post_batch(server, events).json()["accepted"] == 100
    assert server.stop() == 0
    server.start()
    assert post_batch(server, events).json() == {"accepted": 0, "duplicates": 100, "rejected": []}


def test_sigterm_finishes_the_request_in_flight(server: GatewayServer) -> None:
    body = msgspec.json.encode({"events": [track(f"e{i}", pad="y" * 500) for i in range(2000)]})
    first_part_sent, may_finish = threading.Event(), threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield body[:4096]
        first_part_sent.set()
        may_finish.wait(10)
        yield body[4096:]

    result: dict[str, httpx.Response] = {}
    sender = threading.Thread(target=lambda: result.setdefault("response", httpx.post(
        f"{server.url}/track/batch", content=slow_body(), headers=AUTH, timeout=30)))
    sender.start()
    assert first_part_sent.wait(10)
    time.sleep(0.3)  # the server has the request's head and first chunk
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)  # shutdown has begun while the request is still in flight
    may_finish.set()
    sender.join(30)
    assert result["response"].status_code == 202
    assert result["response"].json()["accepted"] == 2000
    assert server.process.wait(30) == 0
    server.process = None
    assert int(query(server.database, "SELECT count(*) FROM events")[0][0]) == 2000


def test_openpanel_sdk_request_shape(server: GatewayServer) -> None:
    # Exactly what @openpanel/sdk 1.3.1 sends for `op.track("signup", {plan: "pro"})` after
    # `identify({profileId: "u-1"})`: its headers, JSON body, keepalive POST to /track.
    headers = {
        "Content-Type": "application/json",
        "openpanel-client-id": AUTH["openpanel-client-id"],
        "openpanel-client-secret": AUTH["openpanel-client-secret"],
        "openpanel-sdk-name": "node",
        "openpanel-sdk-version": "1.3.1",
        "user-agent": "node",
    }
    body = {"type": "track", "payload": {"name": "signup", "profileId": "u-1",
                                         "properties": {"plan": "pro", "__timestamp": iso(now_utc())}}}
    response = httpx.post(f"{server.url}/track", content=msgspec.json.encode(body), headers=headers)
    assert response.status_code == 200
    ids = response.json()
    assert set(ids) == {"deviceId", "sessionId"}
    assert server.stop() == 0
    rows = query(server.database, "SELECT name, profile_id, device_id, session_id, sdk_name, sdk_version FROM events")
    # A server agent's event has no device of its own upstream, as OpenPanel stores it; the answer
    # still carries the derived device id, as OpenPanel's does.
    assert ids["deviceId"] != "" and ids["sessionId"] == ""
    assert rows == [("signup", "u-1", "", "", "node", "1.3.1")]


def test_invalid_config_exits_with_a_clear_message(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[server]\nprot = 1\n")
    result = subprocess.run([sys.executable, "-m", "appliance", "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "server: Object contains unknown field `prot`" in result.stderr

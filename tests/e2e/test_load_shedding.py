"""Load shedding on the real server: past `limits.max_pending_events`, 503 + Retry-After at once.

A batch whose body is still arriving holds its reservation (appliance.admission), so a client
that sends headers and half a body is a deterministic way to keep the gateway "busy".
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import GatewayServer
from tests.e2e.test_metrics import scrape, value
from tests.helpers import AUTH, query, track, write_config


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayServer]:
    # Room for exactly one full batch (max_batch_events 100): a second one does not fit.
    write_config(tmp_path, limits={"max_batch_events": 100, "max_pending_events": 100})
    server = GatewayServer(tmp_path).start()
    yield server
    if server.process is not None:
        server.stop()


def _body(prefix: str, count: int) -> bytes:
    return json.dumps({"events": [track("shed", insert_id=f"{prefix}{n}") for n in range(count)]}).encode()


def _open_upload(gateway: GatewayServer, body: bytes) -> socket.socket:
    """A batch whose headers and first half are sent; the rest is left for later."""
    host, port = gateway.url.removeprefix("http://").rsplit(":", 1)
    connection = socket.create_connection((host, int(port)), timeout=30)
    head = (f"POST /track/batch HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in AUTH.items()) + "\r\n")
    connection.sendall(head.encode() + body[: len(body) // 2])
    return connection


def _finish_upload(connection: socket.socket, body: bytes) -> tuple[int, dict[str, object]]:
    connection.sendall(body[len(body) // 2:])
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
        chunk = connection.recv(65536)
        if not chunk:
            break
        answer += chunk
    connection.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


def _post(gateway: GatewayServer, body: bytes) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(f"{gateway.url}/track/batch", content=body, headers=AUTH, timeout=30)
    return response, time.monotonic() - started


def test_a_request_past_the_bound_gets_503_at_once_and_is_stored_when_resent(gateway: GatewayServer) -> None:
    held_body = _body("held-", 100)
    held = _open_upload(gateway, held_body)
    deadline = time.monotonic() + 10
    while value(scrape(gateway), "gateway_pending_events") != 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert value(scrape(gateway), "gateway_pending_events") == 100

    refused, seconds = _post(gateway, _body("late-", 3))
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "2"
    assert "busy: 100 events are waiting to be stored (limit 100)" in refused.json()["message"]
    assert seconds < 1.0  # answered at once, not after the held batch
    # The refusal's time is kept apart from the answered batches' (the held one is not answered yet).
    refusals = scrape(gateway)
    assert value(refusals, "gateway_refused_request_duration_seconds_count", route="/track/batch") == 1
    assert value(refusals, "gateway_request_duration_seconds_count", route="/track/batch") == 0
    one = httpx.post(f"{gateway.url}/track", json=track("shed", insert_id="single-0"), headers=AUTH, timeout=30)
    assert one.status_code == 503
    ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
    assert ready.status_code == 503 and ready.json()["reason"].startswith("busy: 100 events")
    # Health, metrics and admin answers are not shed.
    assert httpx.get(f"{gateway.url}/healthz", timeout=10).status_code == 200

    status, answer = _finish_upload(held, held_body)
    assert (status, answer["accepted"]) == (202, 100)
    assert value(scrape(gateway), "gateway_pending_events") == 0
    assert httpx.get(f"{gateway.url}/readyz", timeout=10).status_code == 200
    resent, _ = _post(gateway, _body("late-", 3))
    assert resent.status_code == 202 and resent.json()["accepted"] == 3

    assert gateway.stop() == 0
    stored = query(gateway.database, "SELECT json_extract_string(properties, '$.__insertId') FROM events "
                                     "WHERE name = 'shed'")
    assert sorted(row[0] for row in stored) == sorted([f"held-{n}" for n in range(100)] + ["late-0", "late-1", "late-2"])


def test_an_unread_batch_holds_the_most_a_batch_may_carry(gateway: GatewayServer) -> None:
    # Until its body is read, a batch of 10 may be one of 100: it holds 100 (appliance.admission).
    small = _body("small-", 10)
    held = _open_upload(gateway, small)
    deadline = time.monotonic() + 10
    while value(scrape(gateway), "gateway_pending_events") != 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert value(scrape(gateway), "gateway_pending_events") == 100
    status, answer = _finish_upload(held, small)
    assert (status, answer["accepted"]) == (202, 10)
    assert value(scrape(gateway), "gateway_pending_events") == 0

"""Sessions over the real server: concurrent requests for one device start one session."""

from __future__ import annotations

import threading

import httpx
import msgspec

from tests.e2e.conftest import GatewayServer
from tests.helpers import AUTH, PHONE_UA, query, track


def test_three_parallel_requests_for_one_device_start_one_session(server: GatewayServer) -> None:
    bodies = [msgspec.json.encode({"events": [track(f"r{r}e{e}") for e in range(2)]}) for r in range(3)]
    barrier = threading.Barrier(3)
    answers: list[int] = []

    def send(body: bytes) -> None:
        with httpx.Client(headers={**AUTH, "user-agent": PHONE_UA}) as client:
            barrier.wait()
            answers.append(client.post(f"{server.url}/track/batch", content=body).json()["accepted"])

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == [2, 2, 2]
    assert server.stop() == 0
    assert query(server.database, "SELECT count(*) FROM events WHERE name = 'session_start'") == [(1,)]
    assert query(server.database, "SELECT count(DISTINCT session_id) FROM events") == [(1,)]
    assert query(server.database, "SELECT count(*), sum(event_count) FROM sessions") == [(1, 6)]

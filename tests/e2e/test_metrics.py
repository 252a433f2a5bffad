"""`GET /metrics` on the real server: every metric the operator alerts on moves when it should."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from appliance import __version__
from tests.e2e.conftest import GatewayServer
from tests.e2e.test_upstream_faults import UpstreamFront, sync
from tests.helpers import AUTH, PHONE_UA, track, write_config

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def scrape(gateway: GatewayServer) -> Samples:
    response = httpx.get(f"{gateway.url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)

PAGE = "https://kiosk.shop.example"


def batch(gateway: GatewayServer, items: list[dict[str, object]], user_agent: str = PHONE_UA,
          headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{gateway.url}/track/batch", content=msgspec.json.encode({"events": items}),
                      headers={**(AUTH if headers is None else headers), "user-agent": user_agent}, timeout=30)


@pytest.fixture
def front(tmp_path: Path) -> Iterator[UpstreamFront]:
    upstream = UpstreamFront(tmp_path)
    yield upstream
    upstream.stop()


@pytest.fixture
def gateway(tmp_path: Path, front: UpstreamFront) -> Iterator[GatewayServer]:
    write_config(tmp_path, upstream={"url": front.url, "timeout_seconds": 2.0},
                 sync={"interval_seconds": 3600.0}, health={"max_upstream_silence_seconds": 1.0},
                 extra=f'allowed_origins = ["{PAGE}"]')
    server = GatewayServer(tmp_path).start()
    yield server
    if server.process is not None:
        server.kill()


def test_outcome_request_and_storage_metrics_move(gateway: GatewayServer) -> None:
    before = scrape(gateway)
    assert value(before, "gateway_build_info", version=__version__, gateway_id="site-01") == 1
    assert value(before, "process_resident_memory_bytes") > 0
    assert value(before, "gateway_accepting") == 1
    assert value(before, "gateway_storage_bytes") > 0 and value(before, "gateway_disk_free_bytes") > 0
    assert value(before, "gateway_writer_queue_rows") == 0
    # Every configured project's outcome series exist before its first event (rate() sees it).
    assert before[("gateway_events_total", (("outcome", "accepted"), ("project", "demo")))] == 0
    assert {labels for name, labels in before if name == "gateway_events_total"} == {
        (("outcome", outcome), ("project", "demo")) for outcome in ("accepted", "duplicate", "validation", "internal", "bot")}

    answer = batch(gateway, [track("a", insert_id="m-1"), track("b", insert_id="m-2"), track("c", insert_id="m-3"),
                             track("a", insert_id="m-1"), {"type": "track", "payload": {}}]).json()
    assert (answer["accepted"], answer["duplicates"], len(answer["rejected"])) == (3, 1, 1)
    # Bots are looked for among browser pages (a secret client never is one).
    page = {"openpanel-client-id": AUTH["openpanel-client-id"], "origin": PAGE}
    assert batch(gateway, [track("crawl"), track("crawl")], user_agent=BOT_UA, headers=page).status_code == 202
    assert batch(gateway, [track("x")], headers={**AUTH, "openpanel-client-secret": "wrong"}).status_code == 401

    after = scrape(gateway)
    moved = {outcome: value(after, "gateway_events_total", project="demo", outcome=outcome)
             - value(before, "gateway_events_total", project="demo", outcome=outcome)
             for outcome in ("accepted", "duplicate", "validation", "internal", "bot")}
    assert moved == {"accepted": 3, "duplicate": 1, "validation": 1, "internal": 0, "bot": 2}
    assert value(after, "gateway_requests_total", route="/track/batch", status="202") == 2
    assert value(after, "gateway_requests_total", route="/track/batch", status="401") == 1
    assert value(after, "gateway_request_duration_seconds_count", route="/track/batch") == 3
    assert value(after, "gateway_commit_duration_seconds_count") > value(before, "gateway_commit_duration_seconds_count")
    assert value(after, "gateway_sessions_open") == 1
    # 3 events, their session_start, and the session row
    assert value(after, "gateway_upstream_backlog_rows", table="events") == 4
    assert value(after, "gateway_upstream_backlog_rows", table="sessions") == 1
    assert value(after, "gateway_requests_total", route="/metrics", status="200") >= 1
    # DuckDB's share of the process: something once the store was written, never past its limit.
    assert 0 < value(after, "gateway_duckdb_memory_bytes") <= 256 * 1024 * 1024


def test_sync_metrics_move_through_failure_quarantine_and_success(gateway: GatewayServer,
                                                                 front: UpstreamFront) -> None:
    start = scrape(gateway)
    assert value(start, "gateway_upstream_last_success_timestamp_seconds") == 0
    front.upstream._client.command(
        "ALTER TABLE openpanel.events ADD CONSTRAINT no_poison CHECK name != 'poison'")
    assert batch(gateway, [track("fine", insert_id="s-1"), track("poison", insert_id="s-2")]).json()["accepted"] == 2

    front.fail("refuse")
    assert sync(gateway)["error"]
    failed = scrape(gateway)
    assert value(failed, "gateway_upstream_errors_total", kind="unreachable") == 1
    assert value(failed, "gateway_upstream_backlog_rows", table="events") == 3
    assert value(failed, "gateway_upstream_oldest_pending_seconds", table="events") >= 0
    time.sleep(1.2)  # past health.max_upstream_silence_seconds
    silent = httpx.get(f"{gateway.url}/healthz/upstream")
    assert silent.status_code == 503 and "no sync pass has succeeded" in silent.json()["reason"]
    assert httpx.get(f"{gateway.url}/readyz").status_code == 200  # still storing events

    front.fail("ok")
    started = time.time()
    assert sync(gateway)["error"] is None
    done = scrape(gateway)
    assert value(done, "gateway_upstream_backlog_rows", table="events") == 0
    assert value(done, "gateway_upstream_quarantined_rows") == 1
    assert value(done, "gateway_upstream_errors_total", kind="refused") == 1
    assert value(done, "gateway_upstream_sent_rows_total", table="events") == 2  # fine + session_start
    assert value(done, "gateway_upstream_last_success_timestamp_seconds") >= int(started)
    assert httpx.get(f"{gateway.url}/healthz/upstream").status_code == 200
    assert any("sync: events=2" in line for line in gateway.output)


def test_metrics_only_for_metrics_networks_and_accepting_drops_with_the_disk(tmp_path: Path) -> None:
    # A disk cap any store exceeds: the gateway starts but does not accept events.
    write_config(tmp_path, server={"metrics_networks": ["10.0.0.0/8"]}, storage={"max_disk_bytes": 1})
    gateway = GatewayServer(tmp_path).start(ready=False)
    try:
        refused = httpx.get(f"{gateway.url}/metrics")
        assert refused.status_code == 403 and "metrics_networks" in refused.json()["message"]
        assert httpx.get(f"{gateway.url}/healthz/upstream").json()["status"] == "none"
        assert gateway.stop() == 0
        write_config(tmp_path, storage={"max_disk_bytes": 1})
        gateway.start(ready=False)
        assert batch(gateway, [track("x")]).status_code == 503
        assert value(scrape(gateway), "gateway_accepting") == 0
    finally:
        if gateway.process is not None:
            gateway.kill()

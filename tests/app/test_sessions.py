"""Sessions and three-way dispatch (docs/contract.md §5.3, §7), counted in the tables; time moves by clock.

Every test drives a real app (Litestar test client, real DuckDB and diskcache) whose clock is a
`FakeClock`, so "an hour later" or "once quiet" is a clock step, not a sleep.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from appliance import gateway as gateway_module
from appliance.app import create_app
from appliance.settings import load_settings
from storage.store import Store
from tests.app.conftest import AppClient
from tests.helpers import AUTH, PHONE_UA, track, write_config

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
BUCKET_MS = 30 * MINUTE_MS
TABLET_UA = ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
             "Version/16.6 Mobile/15E148 Safari/604.1")
DESKTOP_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0"


class FakeClock:
    """Epoch milliseconds that move only when a test says so; starts on a bucket's middle."""

    def __init__(self) -> None:
        now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        self.now_ms = now - now % BUCKET_MS + 15 * MINUTE_MS

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


class Site(AppClient):
    """The app under a fake clock, with helpers that read the tables."""

    def __init__(self, client: TestClient[Any], clock: FakeClock) -> None:
        super().__init__(client)
        self.clock = clock

    def post(self, events: list[dict[str, Any]], ua: str = PHONE_UA, **headers: str) -> dict[str, Any]:
        response = self.http.post("/track/batch", content=msgspec.json.encode({"events": events}),
                                  headers={**AUTH, "user-agent": ua, **headers})
        assert response.status_code == 202, response.text
        return dict(response.json())

    def count_where(self, sql_where: str) -> int:
        return int(self.rows(f"SELECT count(*) FROM events WHERE {sql_where}")[0][0])

    def starts_per_session(self) -> dict[str, int]:
        return dict(self.rows("SELECT session_id, count(*) FROM events WHERE name = 'session_start' GROUP BY 1"))

    def close_quiet_sessions(self) -> int:
        with self.http.portal() as portal:
            return int(portal.call(self.http.app.state.gateway.close_quiet_sessions))


def at(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def open_site(folder: Path, clock: FakeClock, extra: str = "") -> Iterator[Site]:
    settings = load_settings(write_config(folder, extra=extra))
    with TestClient(app=create_app(settings, clock=clock)) as client:
        yield Site(client, clock)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def site(tmp_path: Path, clock: FakeClock) -> Iterator[Site]:
    yield from open_site(tmp_path, clock)


def test_seven_day_hourly_backlog_in_one_batch(site: Site) -> None:
    now = site.clock.now_ms
    events = [track(f"h{hours}", insert_id=f"backlog-{hours}", __timestamp=at(now - hours * HOUR_MS))
              for hours in range(1, 7 * 24 + 1)]
    body = site.post(events)
    within = [h for h in range(1, 7 * 24 + 1) if h * HOUR_MS <= 5 * DAY_MS]
    assert body["accepted"] == len(within) == 120
    assert {r["index"] for r in body["rejected"]} == {h - 1 for h in range(1, 7 * 24 + 1) if h not in within}
    assert {r["reason"] for r in body["rejected"]} == {"validation"}
    sessions = site.rows("SELECT count(DISTINCT session_id) FROM events WHERE name LIKE 'h%'")[0][0]
    assert sessions == 120
    assert site.starts_per_session() == {sid: 1 for (sid,) in site.rows("SELECT DISTINCT session_id FROM events")}
    # Each session_start sits 100 ms before its event, in the event's session.
    mismatched = site.rows("""SELECT count(*) FROM events e JOIN events s ON s.session_id = e.session_id
                              WHERE e.name <> 'session_start' AND s.name = 'session_start'
                                AND epoch_ms(s.created_at) <> epoch_ms(e.created_at) - 100""")
    assert mismatched == [(0,)]
    assert site.rows("SELECT count(*), sum(event_count), bool_and(NOT is_live) FROM sessions") == [(120, 120, True)]


def test_thirty_seconds_apart_across_a_bucket_edge_are_two_sessions(site: Site) -> None:
    edge = site.clock.now_ms - site.clock.now_ms % BUCKET_MS - 2 * BUCKET_MS  # an edge an hour ago
    # The first 5 s after an edge still belong to the bucket before it (docs/contract.md §5.2).
    site.post([track("before", __timestamp=at(edge - 20_000)), track("after", __timestamp=at(edge + 10_000))])
    assert site.count_where("name = 'session_start'") == 2
    assert site.rows("SELECT count(*) FROM sessions") == [(2,)]


def test_three_devices_behind_one_address_are_three_sessions(site: Site) -> None:
    site.post([track("a")], ua=PHONE_UA)
    site.post([track("b")], ua=TABLET_UA)
    site.post([track("c", __deviceId="kiosk-7")], ua=PHONE_UA)
    assert site.rows("SELECT count(DISTINCT device_id), count(DISTINCT session_id) FROM events") == [(3, 3)]
    assert len(site.starts_per_session()) == 3


def test_anonymous_then_identified_in_one_batch_is_one_session(site: Site) -> None:
    site.post([
        track("landing"),
        {"type": "identify", "payload": {"profileId": "u-42", "email": "u42@example.com"}},
        {"type": "track", "payload": {"name": "purchase", "profileId": "u-42"}},
    ])
    rows = dict(site.rows("SELECT name, profile_id FROM events"))
    device = site.rows("SELECT DISTINCT device_id FROM events")[0][0]
    assert rows["landing"] == device and rows["purchase"] == "u-42"
    assert site.rows("SELECT count(DISTINCT session_id) FROM events") == [(1,)]
    assert site.rows("SELECT profile_id FROM sessions") == [("u-42",)]
    # The anonymous visitor's profile comes from its session_start, as in OpenPanel (`createEvent`).
    assert site.rows("SELECT id, email, is_external FROM profiles ORDER BY is_external") == [
        (device, "", False), ("u-42", "u42@example.com", True)]


def test_sequential_requests_and_resends_start_a_session_once(tmp_path: Path, clock: FakeClock) -> None:
    two_hours_ago = clock.now_ms - 2 * HOUR_MS
    for site in open_site(tmp_path, clock):
        for n in range(3):
            site.post([track(f"live{n}")])
            clock.advance(MINUTE_MS)
        site.post([track("old1", __timestamp=at(two_hours_ago))])
        clock.advance(HOUR_MS)  # the same historical bucket, an hour later
        site.post([track("old2", __timestamp=at(two_hours_ago + 60_000))])
    for site in open_site(tmp_path, clock):  # and after a restart
        site.post([track("old3", __timestamp=at(two_hours_ago + 120_000))])
        assert list(site.starts_per_session().values()) == [1, 1]
        assert site.rows("SELECT count(*), sum(event_count) FROM sessions") == [(2, 6)]


def test_kiosk_with_two_profiles_in_two_periods(site: Site) -> None:
    now = site.clock.now_ms
    morning = [{"type": "track", "payload": {"name": f"m{i}", "profileId": "alice",
                                             "properties": {"__timestamp": at(now - 5 * HOUR_MS + i * MINUTE_MS)}}}
               for i in range(3)]
    evening = [{"type": "track", "payload": {"name": f"e{i}", "profileId": "bob",
                                             "properties": {"__timestamp": at(now - 2 * HOUR_MS + i * MINUTE_MS)}}}
               for i in range(3)]
    site.post(morning + evening, ua=TABLET_UA)
    assert sorted(site.rows("SELECT profile_id, event_count FROM sessions")) == [("alice", 3), ("bob", 3)]
    assert site.rows("SELECT count(DISTINCT device_id) FROM events") == [(1,)]


def test_twenty_events_in_the_same_millisecond(site: Site) -> None:
    moment = at(site.clock.now_ms - 10 * MINUTE_MS)
    site.post([track(f"tap{i}", __timestamp=moment) for i in range(20)])
    assert site.count_where("name LIKE 'tap%'") == 20
    assert site.count_where("name = 'session_start'") == 1
    assert site.rows("SELECT count(*), sum(event_count) FROM sessions") == [(1, 20)]


def test_hundred_events_over_thirty_minutes_across_an_edge_in_one_request(site: Site) -> None:
    edge = site.clock.now_ms - site.clock.now_ms % BUCKET_MS - 4 * BUCKET_MS
    events = [track(f"e{i}", __timestamp=at(edge - 15 * MINUTE_MS + i * 18_000)) for i in range(100)]
    site.post(events)
    assert site.rows("SELECT count(*), sum(event_count) FROM sessions") == [(2, 100)]
    assert site.count_where("name = 'session_start'") == 2


def test_live_session_rolls_across_a_bucket_edge(site: Site) -> None:
    for _ in range(6):  # one event every 10 minutes for an hour: always active
        site.post([track("tick")])
        site.clock.advance(10 * MINUTE_MS)
    assert site.rows("SELECT count(*), sum(event_count), bool_and(is_live) FROM sessions") == [(1, 6, True)]


def test_back_dated_event_does_not_join_the_live_session(site: Site) -> None:
    site.post([track("now")])
    site.post([track("yesterday", __timestamp=at(site.clock.now_ms - DAY_MS))])
    sessions = dict(site.rows("SELECT name, session_id FROM events WHERE name IN ('now', 'yesterday')"))
    assert sessions["now"] != sessions["yesterday"]
    assert sorted(site.rows("SELECT is_live, event_count FROM sessions")) == [(False, 1), (True, 1)]


def test_server_event_borrows_its_profiles_live_session(site: Site) -> None:
    site.post([{"type": "track", "payload": {"name": "browse", "profileId": "u-7"}}])
    site.post([{"type": "track", "payload": {"name": "invoice_paid", "profileId": "u-7"}},
               {"type": "track", "payload": {"name": "nightly_job"}}], ua="okhttp/4.12.0")
    rows = {r[0]: r[1:] for r in site.rows("SELECT name, session_id, device_id, device, os FROM events")}
    assert rows["invoice_paid"] == rows["browse"]  # same session, device and enrichment
    assert rows["nightly_job"][0] == "" and rows["nightly_job"][2] == "server"


def test_a_backlog_of_quiet_sessions_closes_in_bounded_transactions(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each closer transaction takes at most CLOSE_BATCH_SESSIONS sessions, the oldest first;
    one run still closes the whole backlog, each session once."""
    monkeypatch.setattr(gateway_module, "CLOSE_BATCH_SESSIONS", 4)
    now = site.clock.now_ms
    site.post([track("screen_view", __deviceId=f"offline-{n}", __timestamp=at(now - 3 * HOUR_MS - n * MINUTE_MS))
               for n in range(10)])
    site.clock.advance(31 * MINUTE_MS)  # quiet since they were received, too
    transactions: list[int] = []
    close = Store.close_sessions

    def counted(store: Store, now_ms: int, timeout_ms: int, limit: int) -> int:
        closed = close(store, now_ms, timeout_ms, limit)
        transactions.append(closed)
        return closed

    monkeypatch.setattr(Store, "close_sessions", counted)
    assert site.close_quiet_sessions() == 10
    assert transactions == [4, 4, 2]
    assert site.rows("SELECT count(*), count(DISTINCT session_id) FROM events WHERE name = 'session_end'") == [(10, 10)]
    assert site.rows("SELECT bool_and(closed), count(*) FROM sessions") == [(True, 10)]
    assert site.close_quiet_sessions() == 0


def test_every_session_ends_once_with_duration_and_bounce(site: Site) -> None:
    now = site.clock.now_ms
    site.post([track("screen_view", __path="/a", __timestamp=at(now - 3 * HOUR_MS)),
               track("screen_view", __path="/b", __timestamp=at(now - 3 * HOUR_MS + 4 * MINUTE_MS))])
    site.post([track("screen_view", __path="/only")])
    site.clock.advance(10 * MINUTE_MS)
    site.post([track("tap", __path="/only")])
    assert site.close_quiet_sessions() == 0  # the live session was active 0 min ago, the other arrived just now
    site.clock.advance(31 * MINUTE_MS)
    assert site.close_quiet_sessions() == 2
    ends = {r[0]: r[1:] for r in site.rows(
        "SELECT path, duration, properties, epoch_ms(created_at) FROM events WHERE name = 'session_end'")}
    assert ends["/b"][0] == 4 * MINUTE_MS and json.loads(ends["/b"][1]) == {"__bounce": "false"}
    assert ends["/b"][2] == now - 3 * HOUR_MS + 4 * MINUTE_MS + 1000
    assert ends["/only"][0] == 10 * MINUTE_MS and json.loads(ends["/only"][1]) == {"__bounce": "true"}
    assert site.rows("SELECT bool_and(closed), count(*) FROM sessions") == [(True, 2)]
    # A late event for a closed session updates its row but never ends it twice.
    site.post([track("late", __timestamp=at(now - 3 * HOUR_MS + 6 * MINUTE_MS))])
    site.clock.advance(31 * MINUTE_MS)
    assert site.close_quiet_sessions() == 0
    assert site.count_where("name = 'session_end'") == 2
    # The late event has no path: as in OpenPanel's session buffer, the exit page stays /b.
    assert site.rows("SELECT event_count, duration, exit_path FROM sessions WHERE entry_path = '/a'") == [
        (1, 6 * MINUTE_MS, "/b")]


def test_live_state_survives_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    for site in open_site(tmp_path, clock):
        site.post([track("first")])
    clock.advance(20 * MINUTE_MS)
    for site in open_site(tmp_path, clock):
        site.post([track("second")])
        assert site.rows("SELECT count(*), sum(event_count) FROM sessions") == [(1, 2)]


def test_profile_and_group_event_types(site: Site) -> None:
    body = site.post([
        {"type": "identify", "payload": {"profileId": "u1", "properties": {"credits": 10}}},
        {"type": "increment", "payload": {"profileId": "u1", "property": "credits", "value": 5}},
        {"type": "decrement", "payload": {"profileId": "u1", "property": "credits", "value": 2.5}},
        {"type": "increment", "payload": {"profileId": "u1", "property": "visits"}},
        {"type": "identify", "payload": {"profileId": "u2", "properties": {"plan": "pro"}}},
        {"type": "increment", "payload": {"profileId": "u2", "property": "plan"}},
        {"type": "group", "payload": {"id": "acme", "type": "company", "name": "Acme", "properties": {"seats": 40}}},
        {"type": "assign_group", "payload": {"groupIds": ["acme"], "profileId": "u1"}},
        {"type": "assign_group", "payload": {"groupIds": ["acme", "beta"], "profileId": "u1"}},
        {"type": "replay", "payload": {"chunk_index": 0, "events_count": 3, "is_full_snapshot": True,
                                       "started_at": at(site.clock.now_ms - 2000), "ended_at": at(site.clock.now_ms),
                                       "payload": "[{\"type\":2}]"}},
    ])
    assert body["accepted"] == 9
    assert body["rejected"] == [{"index": 5, "reason": "validation",
                                 "error": "payload.property: 'plan' holds 'pro', not a number"}]
    properties, groups = site.rows("SELECT properties, groups FROM profiles WHERE id = 'u1'")[0]
    assert json.loads(properties)["credits"] == "12.5" and json.loads(properties)["visits"] == "1"
    assert groups == ["acme", "beta"]
    assert site.rows("SELECT id, type, name, properties FROM groups") == [("acme", "company", "Acme", '{"seats":"40"}')]
    # The replay chunk is stored under the session the device's events go to.
    site.post([track("after_replay")])
    session_id = site.rows("SELECT session_id FROM events WHERE name = 'after_replay'")[0][0]
    assert site.rows("SELECT session_id, chunk_index, events_count FROM session_replay_chunks") == [(session_id, 0, 3)]


def test_a_visit_across_midnight_keeps_its_session(tmp_path: Path, clock: FakeClock) -> None:
    midnight = clock.now_ms - clock.now_ms % DAY_MS + DAY_MS
    clock.now_ms = midnight - 10 * MINUTE_MS
    for site in open_site(tmp_path, clock):
        site.post([track("before_midnight")])
        clock.advance(15 * MINUTE_MS)  # a new UTC day: a new salt, so a new device id
        with site.http.portal() as portal:
            portal.call(site.http.app.state.gateway.rotate_salt)
        site.post([track("after_midnight")])
        assert site.rows("SELECT count(*) FROM salts") == [(2,)]
        assert site.rows("SELECT count(DISTINCT session_id), count(DISTINCT device_id) FROM events") == [(1, 1)]
        # A new visit after the session ended gets the new day's device id.
        clock.advance(40 * MINUTE_MS)
        site.post([track("next_visit")])
        assert site.rows("SELECT count(DISTINCT device_id) FROM events") == [(2,)]

"""Upstream sync against a real ClickHouse engine (chdb, in-process) (docs/contract.md §10).

chdb runs one engine per process, so all tests share one engine folder and each uses its own
database. Faults are injected at the boundary we do not own: an `Upstream` whose insert fails
the way a real one does (refused connection, or a response lost after the server committed).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pytest
from litestar.testing import TestClient

from appliance.app import create_app
from appliance.settings import load_settings
from sync.clickhouse import Upstream, UpstreamError
from tests.helpers import AUTH, AWKWARD_PROPERTIES, AWKWARD_STORED, PHONE_UA, iso, track, write_config
from tests.openpanel_tables import create_upstream_tables

_databases = itertools.count()


class FaultyUpstream(Upstream):
    """A real chdb upstream that can refuse connections or lose the answer to a committed insert."""

    refuse = False
    lose_answers = 0
    refuse_after: int | None = None  # inserts let through before refusing (then every one is refused)
    hang: threading.Event | None = None  # while set to an unset Event, inserts wait for it
    inserts = 0  # inserts that succeeded

    def insert_arrow(self, table: str, rows: Any, token: str, **how: Any) -> None:
        self._before()
        super().insert_arrow(table, rows, token, **how)
        self._after()

    def _before(self) -> None:
        if FaultyUpstream.hang is not None:
            FaultyUpstream.hang.wait(60)
        if FaultyUpstream.refuse_after is not None:
            FaultyUpstream.refuse_after -= 1
            FaultyUpstream.refuse = FaultyUpstream.refuse or FaultyUpstream.refuse_after < 0
        if FaultyUpstream.refuse:
            raise UpstreamError("Connection refused", retryable=True)

    def _after(self) -> None:
        FaultyUpstream.inserts += 1
        if FaultyUpstream.lose_answers:
            FaultyUpstream.lose_answers -= 1
            raise UpstreamError("timed out reading the response", retryable=True, ambiguous=True)


class Site:
    def __init__(self, client: TestClient[Any], upstream: Upstream) -> None:
        self.http, self.upstream = client, upstream

    def post(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        response = self.http.post("/track/batch", content=msgspec.json.encode({"events": events}),
                                  headers={**AUTH, "user-agent": PHONE_UA})
        assert response.status_code == 202
        return dict(response.json())

    # The admin endpoints answer loopback peers only (the e2e tests use them over a socket);
    # here the same gateway calls run through the test client's event loop.
    def sync(self) -> dict[str, Any]:
        with self.http.portal() as portal:
            result = portal.call(self.http.app.state.gateway.sync.run_once)
        return dict(msgspec.to_builtins(result))

    def hold_writer(self, until: threading.Event) -> threading.Thread:
        """Keep the writer thread busy (as a long commit or checkpoint does) until `until` is set."""
        def hold() -> None:
            with self.http.portal() as portal:
                portal.call(self.http.app.state.gateway.writer.call, lambda store: until.wait(30))

        holder = threading.Thread(target=hold)
        holder.start()
        return holder

    def status(self) -> dict[str, Any]:
        with self.http.portal() as portal:
            return dict(portal.call(self.http.app.state.gateway.status))

    def up(self, sql: str) -> list[tuple[Any, ...]]:
        return self.upstream.query(sql.replace("UP.", f"{self.upstream.database}."))


class Clock:
    def __init__(self) -> None:
        self.now_ms = time.time_ns() // 1_000_000

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


# The upstream tier runs against tables built by OpenPanel's migrations (no dedup window: once
# letting the gateway set it, once forbidding that, so it reconciles by key) and by upstream-init.
_UPSTREAMS = {"openpanel-migrations": ("openpanel-migrations", True),
              "openpanel-migrations-no-alter": ("openpanel-migrations", False),
              "upstream-init": ("upstream-init", True)}


@pytest.fixture(params=list(_UPSTREAMS))
def site(request: pytest.FixtureRequest, tmp_path: Path, chdb_folder: Path, clock: Clock) -> Iterator[Site]:
    schema, may_set_window = _UPSTREAMS[request.param]
    database = f"site_{next(_databases)}"
    url = f"chdb://{chdb_folder}"
    upstream = Upstream(url, database)
    create_upstream_tables(upstream, schema)
    settings = load_settings(write_config(
        tmp_path, upstream={"url": url, "database": database, "set_deduplication_window": may_set_window},
        sync={"interval_seconds": 3600.0, "batch_rows": 500}))
    FaultyUpstream.refuse, FaultyUpstream.lose_answers, FaultyUpstream.hang = False, 0, None
    FaultyUpstream.refuse_after, FaultyUpstream.inserts = None, 0
    with TestClient(app=create_app(settings, clock=clock)) as client:
        client.app.state.gateway.sync._connect = lambda: FaultyUpstream(url, database)
        yield Site(client, upstream)


def replay(chunk_index: int, events_count: int = 3) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {"type": "replay", "payload": {
        "chunk_index": chunk_index, "events_count": events_count, "is_full_snapshot": chunk_index == 0,
        "started_at": iso(now - dt.timedelta(seconds=2)), "ended_at": iso(now), "payload": '[{"type":2}]'}}


def test_everything_arrives_once(site: Site) -> None:
    site.post([track(f"e{i}", insert_id=f"once-{i}") for i in range(1200)]
              + [{"type": "identify", "payload": {"profileId": "u1", "firstName": "Ada"}},
                 {"type": "group", "payload": {"id": "g1", "type": "shop", "name": "North"}}, replay(0)])
    result = site.sync()
    assert result["error"] is None and result["problems"] == []
    local = 1200 + 1  # and the session's session_start
    assert site.up("SELECT count(), uniqExact(id) FROM UP.events") == [(local, local)]
    assert site.up("SELECT count() FROM UP.events WHERE properties['__gateway'] = 'site-01'") == [(local,)]
    assert site.up("SELECT count(), sum(event_count) FROM UP.sessions FINAL") == [(1, 1200)]
    # u1 identified, and the anonymous visitor's profile its session_start created (as in OpenPanel).
    assert site.up("SELECT id, first_name, is_external FROM UP.profiles FINAL ORDER BY is_external DESC") == [
        ("u1", "Ada", True), (site.up("SELECT any(device_id) FROM UP.events")[0][0], "", False)]
    assert site.up("SELECT id, name FROM UP.groups FINAL") == [("g1", "North")]
    assert site.up("SELECT chunk_index, events_count, payload FROM UP.session_replay_chunks") == [
        (0, 3, '[{"type":2}]')]
    status = site.status()
    assert all(entry["rows"] == 0 for entry in status["backlog"].values())
    assert status["upstream_problems"] == [] and status["quarantined_rows"] == 0
    assert site.sync()["sent_rows"] == {}  # nothing twice
    assert site.up("SELECT count() FROM UP.events") == [(local,)]


def test_properties_arrive_as_they_were_sent(site: Site) -> None:
    """The upstream parses the stored JSON text into its map: every escape survives (docs/contract.md §10)."""
    site.post([track("awkward", insert_id="awk-1", **AWKWARD_PROPERTIES),
               {"type": "identify", "payload": {"profileId": "u-awk", "properties": {"note": 'a "b" \\ c'}}}])
    assert site.sync()["error"] is None
    (properties,) = site.up("SELECT properties FROM UP.events WHERE name = 'awkward'")[0]
    assert {key: value for key, value in properties.items() if key != "__insertId"} == AWKWARD_STORED
    (profile,) = site.up("SELECT properties FROM UP.profiles FINAL WHERE id = 'u-awk'")[0]
    assert profile["note"] == 'a "b" \\ c' and profile["__gateway"] == "site-01"


def test_outage_then_recovery(site: Site) -> None:
    FaultyUpstream.refuse = True
    for batch in range(3):
        assert site.post([track(f"b{batch}-{i}", insert_id=f"down-{batch}-{i}") for i in range(400)])["accepted"] == 400
    failed = site.sync()
    assert "Connection refused" in failed["error"]
    assert site.status()["backlog"]["events"]["rows"] == 1201
    FaultyUpstream.refuse = False
    assert site.sync()["error"] is None
    assert site.up("SELECT count(), uniqExact(id) FROM UP.events") == [(1201, 1201)]
    assert site.status()["backlog"]["events"]["rows"] == 0


def test_a_failure_mid_table_leaves_the_read_ahead_batch_for_the_next_pass(site: Site) -> None:
    """Events are pipelined (the next batch is recorded and read while one is sent): when the
    upstream goes away after the first batch, the batches behind it wait, and the next pass
    sends each exactly once, in order."""
    site.post([track(f"e{i}", insert_id=f"ahead-{i}") for i in range(1600)])  # 4 batches of 500
    FaultyUpstream.refuse_after = 1
    failed = site.sync()
    assert "Connection refused" in failed["error"] and failed["sent_rows"] == {"events": 500}
    assert site.up("SELECT count() FROM UP.events") == [(500,)]
    FaultyUpstream.refuse, FaultyUpstream.refuse_after = False, None
    assert site.sync()["error"] is None
    assert site.up("SELECT count(), uniqExact(id) FROM UP.events") == [(1601, 1601)]
    reader = site.http.app.state.gateway.writer.reader()
    batches = reader.execute("SELECT first_seq, last_seq, row_count, status FROM sync_batches "
                             "WHERE table_name = 'events' ORDER BY id").fetchall()
    reader.close()
    assert {status for *_, status in batches} == {"done"} and sum(count for _, _, count, _ in batches) == 1601
    assert all(last < following for (_, last, _, _), (following, *_) in itertools.pairwise(batches))


def test_lost_response_after_commit_makes_no_duplicate(site: Site) -> None:
    site.post([track(f"e{i}", insert_id=f"lost-{i}") for i in range(300)])
    FaultyUpstream.lose_answers = 1
    assert site.sync()["error"] is not None  # the insert landed, but we never heard
    assert site.sync()["error"] is None  # reconciled by id, resent with the same token
    assert site.up("SELECT count(), uniqExact(id) FROM UP.events") == [(301, 301)]


def test_refused_row_is_quarantined_and_the_rest_forwarded(site: Site) -> None:
    site.upstream._client.command(  # a server-side rule the gateway cannot know about
        f"ALTER TABLE {site.upstream.database}.events ADD CONSTRAINT no_poison CHECK name != 'poison'")
    site.post([track("fine-1"), track("poison"), track("fine-2")])
    result = site.sync()
    assert result["error"] is None and result["quarantined_rows"] == 1
    assert sorted(r[0] for r in site.up("SELECT name FROM UP.events")) == ["fine-1", "fine-2", "session_start"]
    status = site.status()
    assert status["quarantined_rows"] == 1 and status["backlog"]["events"]["rows"] == 0
    reader = site.http.app.state.gateway.writer.reader()
    error, row = reader.execute("SELECT error, row FROM sync_quarantine").fetchone()
    reader.close()
    assert "no_poison" in error and json.loads(row)["name"] == "poison"


def test_late_event_updates_the_forwarded_session(site: Site) -> None:
    site.post([track("first", insert_id="late-1")])
    site.sync()
    site.post([track("second", insert_id="late-2")])
    site.sync()
    assert site.up("SELECT count(), sum(event_count) FROM UP.sessions FINAL") == [(1, 2)]
    assert site.up("SELECT sum(sign) FROM UP.sessions") == [(1,)]


def test_ingest_goes_on_while_the_upstream_hangs(site: Site) -> None:
    site.post([track("before", insert_id="hang-0")])
    FaultyUpstream.hang = threading.Event()
    sync_answer: dict[str, Any] = {}
    syncing = threading.Thread(target=lambda: sync_answer.update(site.sync()))
    syncing.start()
    time.sleep(0.2)  # the pass is now stuck in the upstream insert
    for batch in range(5):
        body = site.post([track(f"b{batch}-{i}", insert_id=f"hang-{batch}-{i}") for i in range(2000)])
        assert body["accepted"] == 2000
    assert syncing.is_alive()  # still hanging: the writer and the event loop never waited for it
    FaultyUpstream.hang.set()
    syncing.join(60)
    assert sync_answer["error"] is None
    site.sync()
    assert site.up("SELECT count(), uniqExact(id) FROM UP.events") == [(10_002, 10_002)]


def test_a_pass_forwards_what_was_stored_when_it_began(site: Site) -> None:
    """Rows stored while a pass runs wait for the next pass: a site that keeps sending as fast
    as the pass forwards cannot keep the pass on `events` forever, with sessions and profiles
    never reached."""
    site.post([track(f"e{i}", insert_id=f"begun-{i}") for i in range(600)])  # 601 rows with the session start
    FaultyUpstream.hang = threading.Event()
    first: dict[str, Any] = {}
    syncing = threading.Thread(target=lambda: first.update(site.sync()))
    syncing.start()
    # The pass has read where it ends once it records its first batch; then it hangs in the insert.
    deadline = time.monotonic() + 10
    while _batches_recorded(site, "events") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    # From another device: a session of its own, so the first one stays as it was.
    site.post([track(f"later{i}", insert_id=f"later-{i}", __deviceId="kiosk-2") for i in range(1000)])
    FaultyUpstream.hang.set()
    syncing.join(60)
    assert first["error"] is None
    assert (first["sent_rows"]["events"], first["sent_rows"]["sessions"]) == (601, 1)
    second = site.sync()
    assert second["error"] is None
    assert (second["sent_rows"]["events"], second["sent_rows"]["sessions"]) == (1001, 1)
    assert site.up("SELECT count(), uniqExact(id) FROM UP.events") == [(1602, 1602)]


def test_batches_recorded_ahead_go_up_while_the_writer_is_busy(site: Site) -> None:
    """A writer busy with ingest commits or a checkpoint does not hold the upstream idle: the
    batches recorded before it went busy are all sent meanwhile, and the confirmed ones are
    marked done once it is free."""
    site.post([track(f"e{i}", insert_id=f"ahead-{i}") for i in range(2000)])  # 5 batches of at most 500
    FaultyUpstream.hang = threading.Event()
    answer: dict[str, Any] = {}
    syncing = threading.Thread(target=lambda: answer.update(site.sync()))
    syncing.start()
    # Stuck in the first insert; the other four are recorded ahead meanwhile.
    deadline = time.monotonic() + 10
    while _batches_recorded(site, "events") < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _batches_recorded(site, "events") == 5
    writer_free = threading.Event()
    holder = site.hold_writer(writer_free)
    try:
        time.sleep(0.2)
        FaultyUpstream.hang.set()
        deadline = time.monotonic() + 10
        while FaultyUpstream.inserts < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert FaultyUpstream.inserts == 5  # every batch sent, none marked done yet
        assert _batches_recorded(site, "events", "done") == 0
        assert syncing.is_alive()  # the pass ends once its batches are marked done
    finally:
        writer_free.set()
        holder.join(30)
        syncing.join(60)
    assert answer["error"] is None and answer["sent_rows"]["events"] == 2001
    assert site.up("SELECT count(), uniqExact(id) FROM UP.events") == [(2001, 2001)]
    assert _batches_recorded(site, "events", "done") == 5


def test_a_failed_insert_leaves_the_batches_recorded_ahead_for_the_next_pass(site: Site) -> None:
    site.post([track(f"e{i}", insert_id=f"left-{i}") for i in range(2000)])  # 5 batches of at most 500
    FaultyUpstream.refuse_after = 2
    failed = site.sync()
    assert failed["error"] is not None and failed["sent_rows"].get("events") == 1000
    assert _batches_recorded(site, "events", "done") == 2
    FaultyUpstream.refuse_after, FaultyUpstream.refuse = None, False
    second = site.sync()
    assert second["error"] is None and second["sent_rows"]["events"] == 1001
    assert site.up("SELECT count(), uniqExact(id) FROM UP.events") == [(2001, 2001)]
    assert _batches_recorded(site, "events", "done") == _batches_recorded(site, "events") == 5


def test_a_failed_insert_ends_the_pass_while_the_next_batch_is_still_being_looked_up(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """The interleaving that once hung a pass for good: the insert fails while the recorder is
    still looking up the next batch, so the sender's next read waits on an empty queue. The
    lookup is made slow here (it returns what it would have) so that this order is certain."""
    site.post([track(f"e{i}", insert_id=f"slow-{i}") for i in range(1000)])  # 3 batches of at most 500
    job = site.http.app.state.gateway.sync
    look_up = job._pending_or_next_range
    lookups = itertools.count()
    released = threading.Event()

    def slow_after_the_first(*args: Any) -> Any:
        if next(lookups) > 0:
            released.wait(30)
        return look_up(*args)

    monkeypatch.setattr(job, "_pending_or_next_range", slow_after_the_first)
    FaultyUpstream.refuse = True
    answer: dict[str, Any] = {}
    syncing = threading.Thread(target=lambda: answer.update(site.sync()), daemon=True)
    syncing.start()
    try:
        syncing.join(10)
        assert not syncing.is_alive()  # ended by the failure, not by the lookup letting go
    finally:
        released.set()
    assert answer["error"] is not None and _batches_recorded(site, "events", "done") == 0
    monkeypatch.undo()
    FaultyUpstream.refuse = False
    assert site.sync()["error"] is None
    assert site.up("SELECT count(), uniqExact(id) FROM UP.events") == [(1001, 1001)]


def test_the_next_batch_is_encoded_while_one_is_sent_and_none_is_left_behind(
        site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """While a batch is on its way, the next one is read and encoded (the embedded engine reads
    it from a temporary file), unless its rows must first be looked up upstream (no dedup
    window). No encoded block outlives its pass: sent, refused or prepared and never sent."""
    blocks = tmp_path / "blocks"
    blocks.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(blocks))
    # The fourth batch is still being encoded when the third insert fails and ends the pass.
    encodes, fourth_encoded = itertools.count(1), threading.Event()
    encode = FaultyUpstream.encode

    def encode_slowly(upstream: FaultyUpstream, rows: pa.Table) -> Any:
        if next(encodes) != 4:
            return encode(upstream, rows)
        deadline = time.monotonic() + 10
        while not FaultyUpstream.refuse and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        try:
            return encode(upstream, rows)
        finally:
            fourth_encoded.set()

    monkeypatch.setattr(FaultyUpstream, "encode", encode_slowly)
    site.post([track(f"e{i}", insert_id=f"enc-{i}") for i in range(2000)])  # 5 batches of at most 500
    FaultyUpstream.hang, FaultyUpstream.refuse_after = threading.Event(), 2
    answer: dict[str, Any] = {}
    syncing = threading.Thread(target=lambda: answer.update(site.sync()))
    syncing.start()
    try:
        # Held before the first insert: that batch and the one after it are encoded already.
        encoded_ahead = 0 if request.node.callspec.params["site"] == "openpanel-migrations-no-alter" else 2
        deadline = time.monotonic() + 10
        while len(list(blocks.iterdir())) < encoded_ahead and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        assert len(list(blocks.iterdir())) == encoded_ahead
    finally:
        FaultyUpstream.hang.set()
        syncing.join(60)
    assert "Connection refused" in answer["error"] and answer["sent_rows"] == {"events": 1000}
    assert fourth_encoded.is_set() == (encoded_ahead > 0)  # the pass waited for it
    assert list(blocks.iterdir()) == []
    FaultyUpstream.hang, FaultyUpstream.refuse_after, FaultyUpstream.refuse = None, None, False
    assert site.sync()["error"] is None
    assert site.up("SELECT count(), uniqExact(id) FROM UP.events") == [(2001, 2001)]
    assert list(blocks.iterdir()) == []


def _batches_recorded(site: Site, table: str, status: str | None = None) -> int:
    reader = site.http.app.state.gateway.writer.reader()
    try:
        return int(reader.execute("SELECT count(*) FROM sync_batches WHERE table_name = ? AND status = coalesce(?, status)",
                                  [table, status]).fetchall()[0][0])
    finally:
        reader.close()


def test_retention_deletes_forwarded_rows_only(site: Site, clock: Clock) -> None:
    site.post([track(f"old{i}", insert_id=f"ret-{i}") for i in range(10)])
    site.sync()
    FaultyUpstream.refuse = True
    site.post([track(f"unsent{i}", insert_id=f"ret-u-{i}") for i in range(5)])
    site.sync()  # fails: these stay pending
    clock.now_ms += 8 * 86_400_000  # past retention_days = 7
    with site.http.portal() as portal:
        deleted = portal.call(site.http.app.state.gateway.apply_retention)
    assert deleted["events"] == 11  # the ten forwarded events and their session_start
    reader = site.http.app.state.gateway.writer.reader()
    left = sorted(r[0] for r in reader.execute("SELECT name FROM events").fetchall())
    compactions = reader.execute("SELECT count(*) FROM store_compactions").fetchall()
    reader.close()
    assert left == [f"unsent{i}" for i in range(5)]
    assert compactions == [(1,)]  # the daily compaction follows the deletes


@pytest.mark.slow
def test_200k_events_while_the_upstream_is_down_all_arrive(site: Site) -> None:
    FaultyUpstream.refuse = True
    phones = [f"phone-{n}" for n in range(40)]
    for batch in range(100):
        events: list[dict[str, Any]] = [
            track(f"e{batch}-{i}", insert_id=f"big-{batch}-{i}", __deviceId=phones[i % 40]) for i in range(1990)]
        events += [{"type": "identify", "payload": {"profileId": f"user-{batch}-{n}"}} for n in range(10)]
        assert site.post(events)["accepted"] == 2000
    assert site.sync()["error"] is not None
    FaultyUpstream.refuse = False
    assert site.sync()["error"] is None
    reader = site.http.app.state.gateway.writer.reader()
    local_events = reader.execute("SELECT count(*) FROM events").fetchone()[0]
    local_sessions = reader.execute("SELECT count(*) FROM sessions").fetchone()[0]
    reader.close()
    assert local_events > 199_000
    assert site.up("SELECT count(), uniqExact(id) FROM UP.events") == [(local_events, local_events)]
    assert site.up("SELECT count() FROM UP.sessions FINAL") == [(local_sessions,)]
    # 1000 identified users, and the 40 phones' anonymous profiles from their session_starts.
    assert site.up("SELECT countIf(is_external), countIf(NOT is_external) FROM UP.profiles FINAL") == [(1000, 40)]
    assert all(entry["rows"] == 0 for entry in site.status()["backlog"].values())


def test_admin_endpoints_refuse_non_loopback_clients(site: Site) -> None:
    # Litestar's test client is not a loopback peer (its address is "testclient").
    for response in (site.http.get("/admin/status"), site.http.post("/admin/sync")):
        assert response.status_code == 403
        assert "admin_networks" in response.json()["message"]


def test_every_table_arrives_once_through_lost_answers(site: Site) -> None:
    """Each insert's answer is lost once after the server committed it: every table's rows still
    land exactly once (by the dedup window, or by reconciliation where the table has none)."""
    site.post([track(f"e{i}", insert_id=f"lost-all-{i}") for i in range(40)]
              + [{"type": "identify", "payload": {"profileId": "u1", "firstName": "Ada"}},
                 {"type": "group", "payload": {"id": "g1", "type": "shop", "name": "North"}}, replay(0), replay(1)])
    for _ in range(5):
        FaultyUpstream.lose_answers = 1
        assert site.sync()["error"] is not None
    FaultyUpstream.lose_answers = 0
    assert site.sync()["error"] is None
    site.post([track("later", insert_id="lost-all-later")])  # a new session version, cancelling the first
    FaultyUpstream.lose_answers = 1
    site.sync()
    assert site.sync()["error"] is None
    assert site.up("SELECT count(), uniqExact(id) FROM UP.events") == [(42, 42)]
    assert site.up("SELECT sum(sign), count() FROM UP.sessions") == [(1, 3)]  # +1, then -1 and +1
    # Versions may repeat a row (a profile seen again); the same version never lands twice.
    profiles = site.up("SELECT count(), uniqExact(id, last_seen_at) FROM UP.profiles")[0]
    reader = site.http.app.state.gateway.writer.reader()
    local_profiles = reader.execute("SELECT count(*) FROM profiles").fetchall()
    reader.close()
    assert profiles[0] == profiles[1] and site.up("SELECT count() FROM UP.profiles FINAL") == local_profiles
    assert site.up("SELECT count() FROM UP.groups") == [(1,)]
    assert site.up("SELECT count() FROM UP.session_replay_chunks") == [(2,)]


def test_a_table_that_cannot_take_the_rows_is_one_problem_not_a_retry_loop(site: Site) -> None:
    site.upstream.command(f"ALTER TABLE {site.upstream.database}.groups MODIFY COLUMN name Array(String)")
    site.post([track("fine"), {"type": "group", "payload": {"id": "g1", "type": "shop", "name": "North"}}])
    problem = f"{site.upstream.database}.groups.name: type Array(String) cannot take the gateway's string"
    for _ in range(2):  # no error, so no backoff: the other tables keep flowing on every pass
        result = site.sync()
        assert result["error"] is None and result["problems"] == [problem]
    assert site.status()["upstream_problems"] == [problem]
    assert site.status()["backlog"]["groups"]["rows"] == 1
    assert site.up("SELECT count() FROM UP.events") == [(2,)]
    site.upstream.command(f"ALTER TABLE {site.upstream.database}.groups MODIFY COLUMN name String")
    result = site.sync()
    assert result["problems"] == [] and result["sent_rows"] == {"groups": 1}
    assert site.up("SELECT name FROM UP.groups") == [("North",)]


def test_a_value_the_upstream_type_cannot_hold_is_quarantined(site: Site) -> None:
    # An upstream narrower than OpenPanel's (UInt16): 300 is valid here but does not fit there.
    site.upstream.command(f"ALTER TABLE {site.upstream.database}.session_replay_chunks "
                          "MODIFY COLUMN events_count UInt8")
    site.post([replay(0, events_count=300), replay(1, events_count=12)])
    result = site.sync()
    assert result["error"] is None and result["quarantined_rows"] == 1
    assert site.up("SELECT chunk_index, events_count FROM UP.session_replay_chunks") == [(1, 12)]
    reader = site.http.app.state.gateway.writer.reader()
    error, row = reader.execute("SELECT error, row FROM sync_quarantine").fetchone()
    reader.close()
    assert error == "session_replay_chunks.events_count: 300 does not fit UInt8"
    assert json.loads(row)["chunk_index"] == 0


def test_inserted_at_is_the_upstream_insert_time_for_late_rows(site: Site) -> None:
    site.upstream.command(f"ALTER TABLE {site.upstream.database}.events ADD COLUMN inserted_at DateTime64(3) "
                          "DEFAULT created_at")
    three_days_ago = iso(dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    site.post([track("backlog", insert_id="late-backlog", __timestamp=three_days_ago)])
    before = site.up("SELECT now64(3)")[0][0]
    assert site.sync()["error"] is None
    rows = site.up("SELECT created_at, inserted_at FROM UP.events WHERE name = 'backlog'")
    assert len(rows) == 1
    created_at, inserted_at = rows[0]
    assert inserted_at >= before.replace(microsecond=before.microsecond // 1000 * 1000) > created_at


def _dedup_windows(site: Site) -> dict[str, str]:
    rows = site.up("SELECT name, create_table_query FROM system.tables WHERE database = 'UP'".replace(
        "'UP'", f"'{site.upstream.database}'"))
    tables = ("events", "sessions", "profiles", "groups", "session_replay_chunks")
    return {name: (re.search(r"non_replicated_deduplication_window = (\d+)", query) or [None, "0"])[1]
            for name, query in rows if name in tables}


def test_the_dedup_window_is_set_only_where_missing_and_allowed(site: Site, request: pytest.FixtureRequest) -> None:
    schema, may_set_window = _UPSTREAMS[request.node.callspec.params["site"]]
    before = _dedup_windows(site)
    assert set(before.values()) == ({"0"} if schema == "openpanel-migrations" else {"100000"})
    site.post([track("one")])
    assert site.sync()["error"] is None
    assert set(_dedup_windows(site).values()) == ({"100000"} if may_set_window else {"0"})


def test_without_a_window_a_resent_block_lands_twice(chdb_folder: Path) -> None:
    """Why the window or the reconciliation is needed: on OpenPanel's own tables a token alone
    does not deduplicate."""
    upstream = Upstream(f"chdb://{chdb_folder}", f"site_{next(_databases)}")
    create_upstream_tables(upstream, "openpanel-migrations")
    for _ in range(2):
        upstream.insert_arrow("groups", pa.table({"id": ["g"], "project_id": ["p"], "version": [1]}), "same-token")
    assert upstream.query(f"SELECT count() FROM {upstream.database}.groups") == [(2,)]

"""The single writer against a real DuckDB file: grouping, isolation of a failing request, restart."""

from __future__ import annotations

import asyncio
import tempfile
import threading
import uuid
from pathlib import Path

import msgspec
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.database import open_database
from storage.locks import SessionStartLocks
from storage.session_aggregates import event_batch
from storage.store import Store
from storage.write_request import EventRow, StoredIds, WriteRequest
from storage.writer import StorageWriter

NOW_MS = 1_780_920_000_000


def row(name: str, event_id: str, revenue: int = 0) -> EventRow:
    return EventRow(id=event_id, id_from_client=True, name=name, project_id="p", device_id="d",
                    profile_id="d", session_id="", created_at=NOW_MS, received_at=NOW_MS, revenue=revenue)


def uuid_for(number: int) -> str:
    return f"00000000-0000-4000-8000-{number:012d}"


def count(writer: StorageWriter) -> int:
    reader = writer.reader()
    try:
        return int(reader.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        reader.close()


def test_a_failing_request_does_not_fail_its_group(tmp_path: Path) -> None:
    writer = StorageWriter(str(tmp_path / "g.duckdb"), cache_dir=str(tmp_path / "cache"), duplicate_window_ms=10**9)
    writer.start()

    async def scenario() -> list[object]:
        good = [WriteRequest(events=[row(f"good{n}", uuid_for(n * 10 + i)) for i in range(3)]) for n in range(5)]
        bad = WriteRequest(events=[row("bad", uuid_for(999), revenue=-1)])  # cannot be a UBIGINT
        return await asyncio.gather(*(writer.write(r) for r in [*good[:2], bad, *good[2:]]),
                                    return_exceptions=True)

    try:
        results = asyncio.run(scenario())
        assert [isinstance(r, Exception) for r in results] == [False, False, True, False, False, False]
        assert count(writer) == 15
        assert isinstance(results[2], OverflowError)
        assert writer.running
        assert writer.last_commit_error is None  # later commits succeeded: ready again
    finally:
        writer.stop()


def test_sequence_continues_after_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "g.duckdb")
    for attempt in range(2):
        writer = StorageWriter(path, cache_dir=str(tmp_path / "cache"), duplicate_window_ms=10**9)
        writer.start()
        try:
            asyncio.run(writer.write(WriteRequest(events=[row("e", uuid_for(attempt * 10 + i)) for i in range(3)])))
            reader = writer.reader()
            seqs = [r[0] for r in reader.execute("SELECT seq FROM events ORDER BY seq").fetchall()]
            reader.close()
        finally:
            writer.stop()
    assert seqs == [1, 2, 3, 4, 5, 6]


def test_writing_after_stop_is_refused(tmp_path: Path) -> None:
    from storage.writer import WriterStopped

    writer = StorageWriter(str(tmp_path / "g.duckdb"), cache_dir=str(tmp_path / "cache"), duplicate_window_ms=10**9)
    writer.start()
    writer.stop()
    with pytest.raises(WriterStopped):
        asyncio.run(writer.write(WriteRequest(events=[row("late", uuid_for(1))])))


def test_session_start_lock_is_taken_and_a_stale_lock_does_not_hide_a_start(tmp_path: Path) -> None:
    from storage.locks import SessionStartLocks

    writer = StorageWriter(str(tmp_path / "g.duckdb"), cache_dir=str(tmp_path / "cache"), duplicate_window_ms=10**9)
    writer.start()
    try:
        first = row("view", uuid_for(1))
        first.session_id = "sess-a"
        asyncio.run(writer.write(WriteRequest(events=[first])))
    finally:
        writer.stop()
    locks = SessionStartLocks(str(tmp_path / "cache"), expire_seconds=10**6)
    try:
        assert not locks.claim("p", "sess-a")  # the writer took it with the session's start
        assert locks.claim("p", "sess-b")  # as if a crash hit between claim and commit
    finally:
        locks.close()
    writer = StorageWriter(str(tmp_path / "g.duckdb"), cache_dir=str(tmp_path / "cache"), duplicate_window_ms=10**9)
    writer.start()
    try:
        second = row("view", uuid_for(2))
        second.session_id = "sess-b"
        asyncio.run(writer.write(WriteRequest(events=[second])))
        reader = writer.reader()
        starts = reader.execute("SELECT session_id FROM events WHERE name = 'session_start' ORDER BY 1").fetchall()
        reader.close()
        assert starts == [("sess-a",), ("sess-b",)]  # the sessions table, not the stale key, decided
    finally:
        writer.stop()


def test_checkpoint_runs_once_the_wal_is_big_enough(tmp_path: Path) -> None:
    path = tmp_path / "g.duckdb"
    writer = StorageWriter(str(path), cache_dir=str(tmp_path / "cache"), duplicate_window_ms=10**9)
    writer.start()
    try:
        asyncio.run(writer.write(WriteRequest(events=[row(f"e{i}", uuid_for(i)) for i in range(2000)])))
        wal = Path(str(path) + ".wal")
        size = wal.stat().st_size
        assert asyncio.run(writer.call(lambda store: store.checkpoint_if_due(size + 1))) == size
        assert wal.exists() and wal.stat().st_size == size  # below the threshold: nothing done
        asyncio.run(writer.call(lambda store: store.checkpoint_if_due(size)))
        assert not wal.exists() or wal.stat().st_size < size
    finally:
        writer.stop()


def test_a_call_runs_before_the_writes_queued_after_it(tmp_path: Path) -> None:
    """Scheduled work (checkpoints, the session closer, sync's ledger) keeps its place in line:
    under a steady stream of requests it must not wait for the queue to run dry."""
    writer = StorageWriter(str(tmp_path / "g.duckdb"), cache_dir=str(tmp_path / "cache"), duplicate_window_ms=10**9)
    writer.start()
    gate = threading.Event()

    def events_committed(store: Store) -> int:
        return int(store.connection.execute("SELECT count(*) FROM events").fetchone()[0])

    async def scenario() -> int:
        held = asyncio.ensure_future(writer.call(lambda store: gate.wait(10)))  # the writer is busy meanwhile
        before = asyncio.ensure_future(writer.write(WriteRequest(events=[row("before", uuid_for(1))])))
        call = asyncio.ensure_future(writer.call(events_committed))
        after = [asyncio.ensure_future(writer.write(WriteRequest(events=[row("after", uuid_for(10 + n))])))
                 for n in range(3)]
        await asyncio.sleep(0.05)  # all four queued behind the held writer, in this order
        gate.set()
        await asyncio.gather(held, before, *after)
        return await call

    try:
        assert asyncio.run(scenario()) == 1  # the write queued before it, none of those after
        assert count(writer) == 4
    finally:
        writer.stop()


def _view(number: int, session_id: str) -> EventRow:
    event = row("view", uuid_for(number))
    event.session_id = session_id
    return event


def _sessions(writer: StorageWriter) -> dict[str, tuple[int, int]]:
    """Per session: its event count and how many `session_start` rows it has."""
    reader = writer.reader()
    try:
        return {session_id: (events, starts) for session_id, events, starts in reader.execute(
            """SELECT s.id, s.event_count, (SELECT count(*) FROM events e
                                            WHERE e.session_id = s.id AND e.name = 'session_start')
               FROM sessions s""").fetchall()}
    finally:
        reader.close()


def test_sessions_written_long_ago_are_found_through_older_filter_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A commit looks for stored sessions only among rows written since the oldest filter segment
    that may hold one of them; sessions from old segments, after a restart, and behind a false
    "maybe" of a newer segment are still merged, never started twice."""
    import numpy as np

    import storage.recent_ids

    monkeypatch.setattr(storage.recent_ids, "_MIN_SEGMENT_IDS", 8)  # a segment per few commits
    path, cache = str(tmp_path / "g.duckdb"), str(tmp_path / "cache")
    writer = StorageWriter(path, cache_dir=cache, duplicate_window_ms=10**9)
    writer.start()
    try:
        for batch in range(10):  # 40 sessions over 10 commits: several segments
            asyncio.run(writer.write(WriteRequest(
                events=[_view(batch * 10 + n, f"s{batch * 4 + n}") for n in range(4)])))
        asyncio.run(writer.write(WriteRequest(events=[_view(500, "s0"), _view(501, "s21")])))

        def false_maybe(store: Store) -> None:
            # The newest segment claims "s1", as a false positive would: its rows start too late.
            hashes = store.connection.sql("SELECT hash('s1')").fetchall()
            store.recent_sessions.add(np.array([hashes[0][0]], np.uint64), NOW_MS, 10**9)

        asyncio.run(writer.call(false_maybe))
        asyncio.run(writer.write(WriteRequest(events=[_view(502, "s1")])))
    finally:
        writer.stop()
    writer = StorageWriter(path, cache_dir=cache, duplicate_window_ms=10**9)
    writer.start()
    try:
        asyncio.run(writer.write(WriteRequest(events=[_view(503, "s2"), _view(504, "s39"), _view(505, "new")])))
        sessions = _sessions(writer)
    finally:
        writer.stop()
    assert len(sessions) == 41
    assert {s: sessions[s] for s in ("s0", "s1", "s2", "s21", "s39", "new")} == {
        "s0": (2, 1), "s1": (2, 1), "s2": (2, 1), "s21": (2, 1), "s39": (2, 1), "new": (1, 1)}
    assert all(sessions[f"s{n}"] == (1, 1) for n in range(3, 39) if n != 21)


def _profile_change(kind: str, profile_id: str, index: int = 0, **fields: object) -> object:
    from storage.write_request import ProfileChange

    return ProfileChange(index=index, kind=kind, project_id="p", id=profile_id, seen_at=NOW_MS,  # type: ignore[arg-type]
                         received_at=NOW_MS, **fields)  # type: ignore[arg-type]


def _profiles(writer: StorageWriter) -> list[tuple[str, str, str]]:
    reader = writer.reader()
    try:
        return [(r[0], r[1], r[2]) for r in reader.execute(
            "SELECT id, first_name, properties FROM profiles ORDER BY id").fetchall()]
    finally:
        reader.close()


def test_profiles_stay_one_row_each_through_rewrites_filter_rebuilds_and_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Profiles have no key in the table: the writer finds a stored profile through its filter
    (segments, a false "maybe" of a newer segment, a rebuild, a restart) and rewrites it; a
    profile is never written twice, and increments read its latest value."""
    import numpy as np

    import storage.profiles
    import storage.recent_ids

    monkeypatch.setattr(storage.recent_ids, "_MIN_SEGMENT_IDS", 8)  # a segment per few commits
    monkeypatch.setattr(storage.profiles, "_REBUILD_AFTER_IDS", 16)  # rebuilt every few commits
    path, cache = str(tmp_path / "g.duckdb"), str(tmp_path / "cache")
    rebuilds: list[int] = []
    rebuild = storage.profiles.StoredProfiles.rebuild
    monkeypatch.setattr(storage.profiles.StoredProfiles, "rebuild",
                        lambda self, connection: (rebuilds.append(1), rebuild(self, connection))[1])

    def write(*changes: object, events: tuple[EventRow, ...] = ()) -> dict[int, str]:
        indexed = [msgspec.structs.replace(c, index=n) for n, c in enumerate(changes)]  # type: ignore[type-var]
        return asyncio.run(writer.write(WriteRequest(profile_changes=indexed, events=list(events)))).rejected

    writer = StorageWriter(path, cache_dir=cache, duplicate_window_ms=10**9)
    writer.start()
    try:
        for batch in range(10):
            assert write(*(_profile_change("identify", f"u{batch * 3 + n}", first_name="A") for n in range(3)),
                         _profile_change("increment", "u0", property="visits", amount=1)) == {}
        # A new session of device d7 creates its anonymous profile; a later one merges into it.
        write(events=(_view(700, "s7"),))
        later = _view(701, "s8")
        later.path, later.created_at = "/shop", NOW_MS + 1
        write(events=(later,))

        def false_maybe(store: Store) -> None:
            # The newest segment claims "u1", as a false positive would: its rows start too late.
            [(key_hash,)] = store.connection.sql("SELECT hash('p', 'u1')").fetchall()
            store.stored_profiles.file(np.array([key_hash], np.uint64), 10**9)

        asyncio.run(writer.call(false_maybe))
        assert write(_profile_change("increment", "u1", property="visits", amount=5)) == {}
    finally:
        writer.stop()
    assert rebuilds and len(rebuilds) > 1  # at open, and at least once between commits
    writer = StorageWriter(path, cache_dir=cache, duplicate_window_ms=10**9)
    writer.start()
    try:
        assert write(_profile_change("increment", "u0", property="visits", amount=1),
                     _profile_change("identify", "u29", first_name="B"),
                     _profile_change("increment", "nobody", property="visits", amount=1)) == {
            2: "payload.profileId: no profile 'nobody'; identify it first"}
        profiles = _profiles(writer)
    finally:
        writer.stop()
    assert [p[0] for p in profiles] == sorted(["d", *(f"u{n}" for n in range(30))])  # one row each
    by_id = {p[0]: p for p in profiles}
    assert by_id["u0"][2] == '{"visits":"11"}' and by_id["u1"][2] == '{"visits":"5"}'
    assert by_id["u29"][1] == "B" and by_id["u28"][1] == "A"
    assert by_id["d"][2].startswith('{"path":"/shop"')  # the second session's page merged in


def test_a_commit_of_many_new_sessions_with_wide_rows_fits_the_default_memory_limit(tmp_path: Path) -> None:
    """12,000 events that each start a session, 1.5 KB of properties each, in one group commit:
    the sessions' aggregates and starts must not hold whole rows inside DuckDB's 64 MB."""
    writer = StorageWriter(str(tmp_path / "w.duckdb"), cache_dir=str(tmp_path / "cache"), duplicate_window_ms=10**9)
    writer.start()
    properties = msgspec.json.encode({"__query.utm_source": "spring", **{f"k{i}": "v" * 40 for i in range(30)}}).decode()

    def request(number: int) -> WriteRequest:
        return WriteRequest(events=[
            EventRow(id=uuid_for(number * 10_000 + i), id_from_client=True, name="screen_view", project_id="p",
                     device_id=f"d{number}-{i}", profile_id=f"d{number}-{i}", session_id=f"s{number}-{i}",
                     created_at=NOW_MS + i, received_at=NOW_MS, path="/landing", properties=properties)
            for i in range(2000)])

    async def scenario() -> None:
        await asyncio.gather(*(writer.write(request(n)) for n in range(6)))

    try:
        asyncio.run(scenario())
        reader = writer.reader()
        try:
            assert reader.execute("SELECT count(*) FILTER (WHERE name = 'session_start'), count(*) FROM events"
                                  ).fetchone() == (12_000, 24_000)
            assert reader.execute("SELECT count(*), count(DISTINCT id) FROM sessions WHERE utm_source = 'spring'"
                                  ).fetchone() == (12_000, 12_000)
        finally:
            reader.close()
    finally:
        writer.stop()


def test_a_failed_commit_gives_its_session_start_claims_back(tmp_path: Path) -> None:
    """The claims of a commit are recorded on the cache's thread while the rows are written; a
    request that fails after them (here its replay chunk's index overflows) leaves no key."""
    from storage.locks import SessionStartLocks
    from storage.write_request import ReplayChunk

    writer = StorageWriter(str(tmp_path / "g.duckdb"), cache_dir=str(tmp_path / "cache"), duplicate_window_ms=10**9)
    writer.start()
    try:
        event = row("view", uuid_for(1))
        event.session_id = "sess-failed"
        chunk = ReplayChunk(project_id="p", session_id="sess-failed", chunk_index=70_000, started_at=NOW_MS,
                            ended_at=NOW_MS, events_count=1, is_full_snapshot=True, payload="[]", received_at=NOW_MS)
        with pytest.raises(pa.ArrowInvalid):
            asyncio.run(writer.write(WriteRequest(events=[event], replays=[chunk])))
        assert count(writer) == 0
    finally:
        writer.stop()
    locks = SessionStartLocks(str(tmp_path / "cache"), expire_seconds=10**6)
    try:
        assert locks.claim("p", "sess-failed")  # nobody holds it: the failed commit gave it back
    finally:
        locks.close()


# ---- duplicates in a group commit, against the row-by-row definition -------------------------

def reference_duplicates(stored: dict[str, StoredIds], requests: list[list[EventRow]]) -> list[dict[int, StoredIds]]:
    """The writer's rule, row by row: a client-chosen id already stored, or stored by an earlier
    row of the commit, makes a duplicate of that copy; random ids are never duplicates."""
    stored = dict(stored)
    answers: list[dict[int, StoredIds]] = []
    for rows in requests:
        duplicates: dict[int, StoredIds] = {}
        for position, event in enumerate(rows):
            earlier = stored.get(event.id)
            if earlier is not None:
                duplicates[position] = earlier
            elif event.id_from_client:
                stored[event.id] = StoredIds(event.device_id, event.session_id)
        answers.append(duplicates)
    return answers


_CLIENT_IDS = [uuid_for(n) for n in range(6)]


@st.composite
def commit_rows(draw: st.DrawFn) -> EventRow:
    from_client = draw(st.booleans())
    return EventRow(
        id=draw(st.sampled_from(_CLIENT_IDS)) if from_client else str(uuid.uuid4()), id_from_client=from_client,
        name=draw(st.sampled_from(["view", "tap"])), project_id="p", device_id=draw(st.sampled_from(["d1", "d2"])),
        profile_id="d1", session_id=draw(st.sampled_from(["", "s1", "s2"])), created_at=NOW_MS, received_at=NOW_MS)


@settings(max_examples=40, deadline=None)
@given(before=st.lists(st.sampled_from(_CLIENT_IDS), max_size=3, unique=True),
       requests=st.lists(st.lists(commit_rows(), max_size=6), min_size=1, max_size=4),
       as_columns=st.lists(st.booleans(), min_size=4, max_size=4))
def test_a_group_commit_finds_the_duplicates_the_row_by_row_rule_finds(
    before: list[str], requests: list[list[EventRow]], as_columns: list[bool],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/g.duckdb"
        store = Store(path, open_database(path), SessionStartLocks(f"{folder}/cache", expire_seconds=10**6), 10**9)
        try:
            earlier = [msgspec.structs.replace(row("stored", event_id), device_id=f"dev-{n}", session_id=f"sess-{n}")
                       for n, event_id in enumerate(before)]
            store.commit([WriteRequest(events=earlier)])
            writes = [WriteRequest(event_columns=event_batch(rows)) if columns else WriteRequest(events=rows)
                      for rows, columns in zip(requests, as_columns, strict=False)]
            results = store.commit(writes)
            stored = {e.id: StoredIds(e.device_id, e.session_id) for e in earlier}
            expected = reference_duplicates(stored, requests)
            assert [r.duplicates for r in results] == expected
            new = sorted((e.id, e.name, e.device_id) for rows, dups in zip(requests, expected, strict=True)
                         for position, e in enumerate(rows) if position not in dups)
            assert sorted(store.connection.execute(
                "SELECT id::VARCHAR, name, device_id FROM events WHERE name IN ('view', 'tap')").fetchall()) == new
        finally:
            store.connection.close()
            store.locks.close()

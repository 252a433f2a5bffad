"""The single writer against a real DuckDB file: grouping, isolation of a failing request, restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from storage.rows import EventRow, WriteRequest
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

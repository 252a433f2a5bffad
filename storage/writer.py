"""The single writer: one thread owns the DuckDB write connection (SPEC §8).

Input: `WriteRequest`s from request handlers (`await writer.write(...)`). Output: a committed
transaction and, per request, which rows were duplicates. Requests that arrive while a commit
runs are grouped into the next transaction (group commit), so concurrency costs one fsync per
group, not per request. If a group fails, each request in it is retried alone, so one request's
failure never fails another's rows. Checkpoints run here too, but only when no request waits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import duckdb
import msgspec
import pyarrow as pa

from storage.database import open_database
from storage.rows import EventRow, ProfileUpsert, StoredIds, WriteRequest, WriteResult
from storage.schema import EVENT_ARROW_SCHEMA, EVENT_COLUMNS, PROFILE_ARROW_SCHEMA, PROFILE_COLUMNS

log = logging.getLogger(__name__)

T = TypeVar("T")

# Rows one transaction may carry before the writer stops adding queued requests to it.
_GROUP_ROW_LIMIT = 20_000
_EVENT_FIELDS = [c.name for c in EVENT_COLUMNS if c.name != "seq"]
_PROFILE_ENCODER = msgspec.json.Encoder(order="sorted")


class WriterStopped(Exception):
    """The writer is not running; nothing was stored."""


@dataclass
class _Job:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    write: WriteRequest | None = None
    call: Callable[[duckdb.DuckDBPyConnection], Any] | None = None
    rows: int = field(init=False)

    def __post_init__(self) -> None:
        self.rows = len(self.write.events) + len(self.write.profiles) if self.write else 0

    def resolve(self, result: Any = None, error: BaseException | None = None) -> None:
        self.loop.call_soon_threadsafe(_settle, self.future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the request was cancelled (client gone); its rows are stored anyway
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


_STOP = object()


class StorageWriter:
    """Owns the DuckDB file for the life of the process."""

    def __init__(self, path: str, *, duplicate_window_ms: int, checkpoint_wal_bytes: int) -> None:
        self.path = path
        self._wal_path = path + ".wal"
        self._duplicate_window_ms = duplicate_window_ms
        self._checkpoint_wal_bytes = checkpoint_wal_bytes
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._next_event_seq = 0
        self._next_profile_seq = 0
        self.last_commit_error: str | None = None
        self.last_commit_at: float | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Open the file (migrating it) and start the writer thread."""
        self._connection = open_database(self.path)
        self._next_event_seq = self._max_seq("events") + 1
        self._next_profile_seq = self._max_seq("profiles") + 1
        self._thread = threading.Thread(target=self._run, name="duckdb-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish every queued request, checkpoint, close the file."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def backlog(self) -> int:
        """Requests waiting for the writer."""
        return self._queue.qsize()

    def reader(self) -> duckdb.DuckDBPyConnection:
        """A separate connection to the same database, for reads from other threads."""
        if self._connection is None:
            raise WriterStopped("storage is not open")
        return self._connection.cursor()

    # ---- requests ----------------------------------------------------------------------------

    async def write(self, request: WriteRequest) -> WriteResult:
        """Store a request's rows; returns once they are committed (or raises, nothing stored)."""
        result: WriteResult = await self._submit(write=request)
        return result

    async def call(self, function: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run `function(connection)` on the writer thread, between commits."""
        result: T = await self._submit(call=function)
        return result

    async def _submit(self, **job_fields: Any) -> Any:
        if not self.running:
            raise WriterStopped("storage writer is not running")
        loop = asyncio.get_running_loop()
        job = _Job(loop=loop, future=loop.create_future(), **job_fields)
        self._queue.put(job)
        return await job.future

    # ---- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            group = [first]
            rows = first.rows
            # Take whatever else is already waiting, up to the group limit, into one commit.
            while rows < _GROUP_ROW_LIMIT and first.call is None:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stopping = True
                    break
                if job.call is not None:
                    self._queue.put(job)  # calls run on their own, after this group
                    break
                group.append(job)
                rows += job.rows
            if first.call is not None:
                self._run_call(first)
            else:
                self._commit_group(group)
            if self._queue.empty():
                self._checkpoint_if_due()
        self._drain_after_stop()
        self._close()

    def _drain_after_stop(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is _STOP:
                continue
            if job.call is not None:
                self._run_call(job)
            else:
                self._commit_group([job])

    def _run_call(self, job: _Job) -> None:
        assert job.call is not None and self._connection is not None
        try:
            job.resolve(job.call(self._connection))
        except Exception as exc:  # noqa: BLE001 - handed to the awaiting coroutine, which answers
            job.resolve(error=exc)

    def _commit_group(self, group: list[_Job]) -> None:
        try:
            results = self._commit([job.write for job in group if job.write is not None])
        except Exception as exc:  # noqa: BLE001 - the thread must outlive any one bad request
            if len(group) == 1:
                self._fail(group[0], exc)
                return
            log.warning("group commit of %d requests failed (%s); retrying one by one", len(group), exc)
            for job in group:
                self._commit_group([job])
            return
        for job, result in zip(group, results, strict=True):
            job.resolve(result)

    def _fail(self, job: _Job, exc: Exception) -> None:
        self.last_commit_error = f"{type(exc).__name__}: {exc}"
        log.error("commit failed, request answered as not stored: %s", self.last_commit_error)
        job.resolve(error=exc)

    def _commit(self, requests: list[WriteRequest]) -> list[WriteResult]:
        connection = self._connection
        assert connection is not None
        first_event_seq, first_profile_seq = self._next_event_seq, self._next_profile_seq
        connection.execute("BEGIN")
        try:
            results, new_rows = self._find_duplicates(connection, requests)
            if new_rows:
                self._insert_events(connection, new_rows)
            profiles = [upsert for request in requests for upsert in request.profiles]
            if profiles:
                self._upsert_profiles(connection, profiles)
            connection.execute("COMMIT")
        except BaseException:
            self._next_event_seq, self._next_profile_seq = first_event_seq, first_profile_seq
            connection.execute("ROLLBACK")
            raise
        self.last_commit_error = None
        self.last_commit_at = time.time()
        return results

    def _find_duplicates(
        self, connection: duckdb.DuckDBPyConnection, requests: list[WriteRequest]
    ) -> tuple[list[WriteResult], list[EventRow]]:
        client_ids = [row.id for request in requests for row in request.events if row.id_from_client]
        stored: dict[str, StoredIds] = {}
        if client_ids:
            oldest_received = min(row.received_at for r in requests for row in r.events)
            connection.register("candidate_ids", pa.table({"id": pa.array(client_ids, pa.string())}))
            try:
                # An event can only be re-sent while it is inside the acceptance window, so its
                # first copy was received inside it too; `received_at` rises with `seq`, which
                # lets DuckDB skip old row groups.
                found = connection.execute(
                    """
                    SELECT id::VARCHAR, device_id, session_id FROM events
                    WHERE received_at >= epoch_ms(?::BIGINT)
                      AND id IN (SELECT id::UUID FROM candidate_ids)
                    """,
                    [oldest_received - self._duplicate_window_ms],
                ).fetchall()
            finally:
                connection.unregister("candidate_ids")
            stored = {row[0]: StoredIds(row[1], row[2]) for row in found}
        results: list[WriteResult] = []
        new_rows: list[EventRow] = []
        for request in requests:
            duplicates: dict[int, StoredIds] = {}
            for position, row in enumerate(request.events):
                earlier = stored.get(row.id)
                if earlier is not None:
                    duplicates[position] = earlier
                    continue
                if row.id_from_client:
                    stored[row.id] = StoredIds(row.device_id, row.session_id)
                new_rows.append(row)
            results.append(WriteResult(duplicates=duplicates))
        return results, new_rows

    def _insert_events(self, connection: duckdb.DuckDBPyConnection, rows: list[EventRow]) -> None:
        first_seq = self._next_event_seq
        self._next_event_seq += len(rows)
        columns: dict[str, pa.Array] = {
            "seq": pa.array(range(first_seq, first_seq + len(rows)), pa.int64())
        }
        for name in _EVENT_FIELDS:
            columns[name] = pa.array([getattr(row, name) for row in rows], EVENT_ARROW_SCHEMA.field(name).type)
        batch = pa.Table.from_pydict(columns, schema=EVENT_ARROW_SCHEMA)
        connection.register("incoming_events", batch)
        try:
            connection.execute("INSERT INTO events BY NAME SELECT * FROM incoming_events")
        finally:
            connection.unregister("incoming_events")

    def _upsert_profiles(self, connection: duckdb.DuckDBPyConnection, upserts: list[ProfileUpsert]) -> None:
        keys = list(dict.fromkeys((u.project_id, u.id) for u in upserts))
        wanted = pa.table({"project_id": [k[0] for k in keys], "id": [k[1] for k in keys]})
        connection.register("wanted_profiles", wanted)
        try:
            existing = connection.execute(
                """
                SELECT p.project_id, p.id, first_name, last_name, email, avatar, properties,
                       epoch_ms(created_at)
                FROM profiles p JOIN wanted_profiles w USING (project_id, id)
                """
            ).fetchall()
        finally:
            connection.unregister("wanted_profiles")
        merged: dict[tuple[str, str], dict[str, Any]] = {
            (r[0], r[1]): {
                "first_name": r[2], "last_name": r[3], "email": r[4], "avatar": r[5],
                "properties": msgspec.json.decode(r[6]), "created_at": r[7],
            }
            for r in existing
        }
        for upsert in upserts:
            _merge_profile(merged, upsert)
        first_seq = self._next_profile_seq
        self._next_profile_seq += len(merged)
        records = [
            {
                "seq": first_seq + position, "project_id": key[0], "id": key[1],
                "first_name": value["first_name"], "last_name": value["last_name"],
                "email": value["email"], "avatar": value["avatar"],
                "properties": _PROFILE_ENCODER.encode(value["properties"]).decode(),
                "is_external": True, "created_at": value["created_at"], "updated_at": value["updated_at"],
            }
            for position, (key, value) in enumerate(merged.items())
        ]
        batch = pa.Table.from_pylist(records, schema=PROFILE_ARROW_SCHEMA)
        connection.register("incoming_profiles", batch)
        try:
            names = ", ".join(c.name for c in PROFILE_COLUMNS)
            # Column names come from storage.schema, never from a request.
            connection.execute(f"INSERT OR REPLACE INTO profiles ({names}) SELECT {names} FROM incoming_profiles")  # noqa: S608
        finally:
            connection.unregister("incoming_profiles")

    # ---- housekeeping -------------------------------------------------------------------------

    def _checkpoint_if_due(self) -> None:
        try:
            wal_bytes = os.path.getsize(self._wal_path)
        except OSError:
            return
        if wal_bytes < self._checkpoint_wal_bytes or self._connection is None:
            return
        started = time.monotonic()
        try:
            self._connection.execute("CHECKPOINT")
        except duckdb.Error as exc:
            log.warning("checkpoint failed (will retry when idle again): %s", exc)
            return
        log.info("checkpointed %d WAL bytes in %.2fs", wal_bytes, time.monotonic() - started)

    def _max_seq(self, table: str) -> int:
        assert self._connection is not None
        row = self._connection.execute(f"SELECT coalesce(max(seq), 0) FROM {table}").fetchone()  # noqa: S608
        return int(row[0]) if row else 0

    def _close(self) -> None:
        if self._connection is None:
            return
        try:
            self._connection.execute("CHECKPOINT")
        except duckdb.Error as exc:
            log.warning("final checkpoint failed; the WAL will be replayed at next start: %s", exc)
        self._connection.close()
        self._connection = None


def _merge_profile(merged: dict[tuple[str, str], dict[str, Any]], upsert: ProfileUpsert) -> None:
    key = (upsert.project_id, upsert.id)
    current = merged.setdefault(
        key,
        {"first_name": "", "last_name": "", "email": "", "avatar": "", "properties": {},
         "created_at": upsert.seen_at},
    )
    for name in ("first_name", "last_name", "email", "avatar"):
        value = getattr(upsert, name)
        if value:
            current[name] = value
    current["properties"] = {**current["properties"], **upsert.properties}
    current["created_at"] = min(current["created_at"], upsert.seen_at)
    current["updated_at"] = max(current.get("updated_at", upsert.seen_at), upsert.seen_at)

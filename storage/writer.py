"""The single writer: one thread owns the DuckDB write connection (docs/contract.md §8).

Input: `WriteRequest`s from request handlers (`await writer.write(...)`) and maintenance calls
from the scheduler (`await writer.call(...)`). Output: committed transactions (`storage.store`)
and, per request, which rows were duplicates or refused. Requests that arrive while a commit runs
are grouped into the next transaction (group commit), so concurrency costs one fsync per group,
not per request. If a group fails, each request in it is retried alone, so one request's failure
never fails another's rows.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import duckdb

from storage.database import disable_progress_bar, open_database, use_store
from storage.locks import SessionStartLocks
from storage.store import Store
from storage.write_request import WriteRequest, WriteResult

log = logging.getLogger(__name__)

T = TypeVar("T")

# Rows one transaction may carry before the writer stops adding queued requests to it.
_GROUP_ROW_LIMIT = 20_000


class WriterStopped(Exception):
    """The writer is not running; nothing was stored."""


# What the operating system says when the storage volume is full or failing; DuckDB and SQLite
# put it in their messages ("Could not write file ...: No space left on device").
_DISK_ERRORS = (*(os.strerror(code) for code in (errno.ENOSPC, errno.EDQUOT, errno.EIO)), "disk is full")


def is_disk_error(exc: BaseException) -> bool:
    """True when a storage error comes from a full or failing volume: retrying later can succeed."""
    text = str(exc)
    return any(marker in text for marker in _DISK_ERRORS)


@dataclass
class _Job:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    write: WriteRequest | None = None
    call: Callable[[Store], Any] | None = None
    rows: int = field(init=False)

    def __post_init__(self) -> None:
        self.rows = self.write.event_count + len(self.write.profile_changes) if self.write else 0

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

    def __init__(self, path: str, *, cache_dir: str, duplicate_window_ms: int, memory_limit: str = "64MB",
                 threads: int = 1) -> None:
        self.path = path
        self._memory_limit = memory_limit
        self._threads = threads
        self._cache_dir = cache_dir
        self._duplicate_window_ms = duplicate_window_ms
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._store: Store | None = None
        self.last_commit_error: str | None = None
        # Told the seconds of every successful commit (metrics); runs on the writer thread.
        self.on_commit: Callable[[float], None] | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Open the file (migrating it), the session-start locks, and start the writer thread."""
        locks = SessionStartLocks(self._cache_dir, expire_seconds=self._duplicate_window_ms / 1000)
        database = open_database(self.path, self._memory_limit, self._threads)
        self._store = Store(self.path, database, locks, self._duplicate_window_ms)
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

    def queued_rows(self) -> int:
        """Rows of the requests waiting for the writer (read when asked, never counted per request)."""
        with self._queue.mutex:
            waiting = list(self._queue.queue)
        return sum(job.rows for job in waiting if isinstance(job, _Job))

    def reader(self) -> duckdb.DuckDBPyConnection:
        """A separate connection to the same database, for reads from other threads."""
        if self._store is None:
            raise WriterStopped("storage is not open")
        cursor = self._store.connection.cursor()
        use_store(cursor)
        disable_progress_bar(cursor)
        return cursor

    # ---- requests ----------------------------------------------------------------------------

    async def write(self, request: WriteRequest) -> WriteResult:
        """Store a request's rows; returns once they are committed (or raises, nothing stored)."""
        result: WriteResult = await self._submit(write=request)
        return result

    async def call(self, function: Callable[[Store], T]) -> T:
        """Run `function(store)` on the writer thread, between commits."""
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
            if first.call is not None:
                self._run_call(first)
                continue
            group = [first]
            rows = first.rows
            call_next: _Job | None = None
            # Take whatever else is already waiting, up to the group limit, into one commit.
            while rows < _GROUP_ROW_LIMIT:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stopping = True
                    break
                if job.call is not None:
                    # A call runs on its own, right after this group and before anything queued
                    # after it. Put back at the end of the queue, it would be passed again by
                    # every group while requests keep coming: under load the checkpoints, the
                    # session closer and sync's ledger would wait for the load to stop.
                    call_next = job
                    break
                group.append(job)
                rows += job.rows
            self._commit_group(group)
            if call_next is not None:
                self._run_call(call_next)
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
        assert job.call is not None and self._store is not None
        try:
            job.resolve(job.call(self._store))
        except Exception as exc:  # noqa: BLE001 - handed to the awaiting coroutine, which answers
            job.resolve(error=exc)

    def _commit_group(self, group: list[_Job]) -> None:
        assert self._store is not None
        started = time.perf_counter()
        try:
            results = self._store.commit([job.write for job in group if job.write is not None])
        except Exception as exc:  # noqa: BLE001 - the thread must outlive any one bad request
            if len(group) == 1:
                self._fail(group[0], exc)
                return
            log.warning("group commit of %d requests failed (%s); retrying one by one", len(group), exc)
            for job in group:
                self._commit_group([job])
            return
        self.last_commit_error = None
        if self.on_commit is not None:
            self.on_commit(time.perf_counter() - started)
        for job, result in zip(group, results, strict=True):
            job.resolve(result)

    def _fail(self, job: _Job, exc: Exception) -> None:
        self.last_commit_error = f"{type(exc).__name__}: {exc}"
        log.error("commit failed, request answered as not stored: %s", self.last_commit_error)
        job.resolve(error=exc)

    def _close(self) -> None:
        if self._store is None:
            return
        try:
            self._store.connection.execute("CHECKPOINT")
        except duckdb.Error as exc:
            log.warning("final checkpoint failed; the WAL will be replayed at next start: %s", exc)
        self._store.connection.close()
        self._store.locks.close()
        self._store = None


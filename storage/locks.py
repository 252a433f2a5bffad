"""The `session_start` lock in diskcache (docs/contract.md §7).

`claim(project, session)` is diskcache's atomic `add` of `session_start:{project}:{session}`
with an expiry that covers the whole acceptance window (age limit + session timeout), after
which no event of that session can be accepted any more. The writer thread is the only caller,
and it backs every answer with the `sessions` table: a key whose transaction never committed
(a crash between claim and commit) is recognised there and the start is emitted after all.

Because the table decides, the keys are a record, not a gate: when the cache cannot be opened
or written (a full disk: SQLite's "database or disk is full"), a claim simply fails, the start
is still emitted by the table's answer, and the cache is opened again on the next claim.

Every cache call runs on the cache's own thread (one SQLite connection, as diskcache keeps one
per thread): `claim_all_in_background` lets the writer insert a commit's rows into DuckDB while
SQLite records its new sessions, both outside the GIL for most of their time.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import diskcache

log = logging.getLogger(__name__)

_SQLITE_CACHE_PAGES = 1024  # of 4 KiB
_T = TypeVar("_T")


class SessionStartLocks:
    """Persistent, expiring "this session's start was emitted" markers."""

    def __init__(self, directory: str, expire_seconds: float) -> None:
        self._directory = directory
        self._expire_seconds = expire_seconds
        self._cache: diskcache.Cache | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="session-start-cache")
        self._on_cache_thread(self._open)

    def _on_cache_thread(self, call: Callable[..., _T], *args: object) -> _T:
        return self._thread.submit(call, *args).result()

    def _open(self) -> diskcache.Cache | None:
        if self._cache is None:
            try:
                Path(self._directory).mkdir(parents=True, exist_ok=True)
                # No culling on every add (diskcache's default measures the cache's size each
                # time, ~a third of a claim's cost); expired keys go in `forget_expired`, daily.
                # SQLite's page cache and memory map stay at diskcache's defaults (32 MiB and
                # 64 MiB) once many sessions have claimed a key: 4 MiB and no map cut the peak RSS
                # of 600k events that each start a session from 647 to 575 MiB (medians of 3),
                # same throughput.
                self._cache = diskcache.Cache(self._directory, cull_limit=0, eviction_policy="none",
                                              sqlite_cache_size=_SQLITE_CACHE_PAGES, sqlite_mmap_size=0)
            except (sqlite3.Error, OSError) as exc:
                log.warning("session-start cache at %s cannot be opened (%s); retried on next use",
                            self._directory, exc)
        return self._cache

    @staticmethod
    def key(project_id: str, session_id: str) -> str:
        return f"session_start:{project_id}:{session_id}"

    def claim(self, project_id: str, session_id: str) -> bool:
        """True if this call took the lock (nobody had it); False also when the cache cannot be written."""
        return self._on_cache_thread(self._claim, project_id, session_id)

    def claim_all(self, sessions: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Claim every `(project_id, session_id)` in one cache transaction; returns those this
        call took; none when the cache cannot be written (the table decides, see above)."""
        return self.claim_all_in_background(sessions).result()

    def claim_all_in_background(self, sessions: list[tuple[str, str]]) -> Future[list[tuple[str, str]]]:
        """`claim_all`, answered later."""
        return self._thread.submit(self._claim_all, sessions)

    def release(self, project_id: str, session_id: str) -> None:
        """Give a claim back (its transaction did not commit)."""
        self._on_cache_thread(self._release, project_id, session_id)

    def forget_expired(self) -> int:
        """Remove keys whose expiry has passed (no event of their session can arrive any more)."""
        return self._on_cache_thread(self._forget_expired)

    def close(self) -> None:
        self._on_cache_thread(self._close)
        self._thread.shutdown()

    # ---- on the cache's thread ---------------------------------------------------------------

    def _claim(self, project_id: str, session_id: str) -> bool:
        cache = self._open()
        if cache is None:
            return False
        try:
            return bool(cache.add(self.key(project_id, session_id), 1, expire=self._expire_seconds))
        except (sqlite3.Error, OSError) as exc:
            log.warning("session-start cache: claim not recorded (%s)", exc)
            return False

    def _claim_all(self, sessions: list[tuple[str, str]]) -> list[tuple[str, str]]:
        cache = self._open()
        if cache is None:
            return []
        taken = []
        try:
            with cache.transact():
                for project_id, session_id in sessions:
                    if cache.add(self.key(project_id, session_id), 1, expire=self._expire_seconds):
                        taken.append((project_id, session_id))
        except (sqlite3.Error, OSError) as exc:
            log.warning("session-start cache: claims not recorded (%s)", exc)
            return []
        return taken

    def _release(self, project_id: str, session_id: str) -> None:
        if self._cache is None:
            return
        try:
            self._cache.delete(self.key(project_id, session_id))
        except (sqlite3.Error, OSError) as exc:
            # A key left behind is harmless: the sessions table decides (see above).
            log.warning("session-start cache: claim not released (%s)", exc)

    def _forget_expired(self) -> int:
        cache = self._open()
        if cache is None:
            return 0
        try:
            return int(cache.expire())
        except (sqlite3.Error, OSError) as exc:
            log.warning("session-start cache: expired keys not removed (%s)", exc)
            return 0

    def _close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None

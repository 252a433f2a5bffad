"""The `session_start` lock in diskcache (docs/contract.md §7).

`claim(project, session)` is diskcache's atomic `add` of `session_start:{project}:{session}`
with an expiry that covers the whole acceptance window (age limit + session timeout), after
which no event of that session can be accepted any more. The writer thread is the only caller,
and it backs every answer with the `sessions` table: a key whose transaction never committed
(a crash between claim and commit) is recognised there and the start is emitted after all.
"""

from __future__ import annotations

from pathlib import Path

import diskcache


class SessionStartLocks:
    """Persistent, expiring "this session's start was emitted" markers."""

    def __init__(self, directory: str, expire_seconds: float) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        self._cache = diskcache.Cache(directory)
        self._expire_seconds = expire_seconds

    @staticmethod
    def key(project_id: str, session_id: str) -> str:
        return f"session_start:{project_id}:{session_id}"

    def claim(self, project_id: str, session_id: str) -> bool:
        """True if this call took the lock (nobody had it)."""
        return bool(self._cache.add(self.key(project_id, session_id), 1, expire=self._expire_seconds))

    def release(self, project_id: str, session_id: str) -> None:
        """Give a claim back (its transaction did not commit)."""
        self._cache.delete(self.key(project_id, session_id))

    def close(self) -> None:
        self._cache.close()

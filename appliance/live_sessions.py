"""Live session state (docs/contract.md §5.3, §7): which device, and which profile, has a live session now.

Input: stored live rows (recorded after their commit) and, at start, the open live sessions of
the `sessions` table. Output: answers to "does this device have an active live session at this
event time?" and "does this profile?" (server events borrow it). State lives in memory because
only this process writes; it is rebuilt from DuckDB on start. Historical events never read or
touch it. Sessions themselves (rows, `session_start`, `session_end`) are kept by the writer.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from storage.reads import open_live_sessions
from storage.schema import GEO_AND_AGENT_NAMES
from storage.write_request import EventRow

# What a borrowing server event takes from the session it joins, as OpenPanel's worker does
# (`events.incoming-event.ts`): the session's referrer, geo and agent; path and origin are the
# session's exit page (kept current in `LiveSession.exit`).
BORROWED_COLUMNS = ("referrer", "referrer_name", "referrer_type", *GEO_AND_AGENT_NAMES)


@dataclass(slots=True)
class LiveSession:
    session_id: str
    device_id: str
    last_event_ms: int
    borrowed: dict[str, object]
    exit: tuple[str, str] = ("", "")  # (path, origin) of the latest event that had a path

    def active_at(self, event_ms: int, timeout_ms: int) -> bool:
        return abs(event_ms - self.last_event_ms) <= timeout_ms


class LiveSessions:
    """The active live session of each device and of each identified profile."""

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self._by_device: dict[tuple[str, str], LiveSession] = {}
        self._by_profile: dict[tuple[str, str], LiveSession] = {}

    def for_device(self, project_id: str, device_id: str, event_ms: int) -> LiveSession | None:
        """The device's live session, if it is active at `event_ms`."""
        session = self._by_device.get((project_id, device_id))
        return session if session is not None and session.active_at(event_ms, self.timeout_ms) else None

    def for_profile(self, project_id: str, profile_id: str, event_ms: int) -> LiveSession | None:
        """The live session an identified profile is in, if active at `event_ms`."""
        session = self._by_profile.get((project_id, profile_id))
        return session if session is not None and session.active_at(event_ms, self.timeout_ms) else None

    def record(self, rows: list[EventRow]) -> None:
        """Extend (or start) live sessions with rows that were just committed."""
        for row in rows:
            key = (row.project_id, row.device_id)
            session = self._by_device.get(key)
            if session is None or session.session_id != row.session_id:
                if session is not None and session.last_event_ms > row.created_at:
                    continue  # an older session's late event must not replace the current one
                session = LiveSession(row.session_id, row.device_id, row.created_at,
                                      {name: getattr(row, name) for name in BORROWED_COLUMNS})
                self._by_device[key] = session
            if row.path and (row.created_at >= session.last_event_ms or not session.exit[0]):
                session.exit = (row.path, row.origin)
            session.last_event_ms = max(session.last_event_ms, row.created_at)
            if row.profile_id != row.device_id:
                self._by_profile[(row.project_id, row.profile_id)] = session

    def forget_quiet(self, now_ms: int) -> None:
        """Drop sessions quiet for longer than the timeout (they can never be joined again)."""
        oldest = now_ms - self.timeout_ms
        self._by_device = {k: s for k, s in self._by_device.items() if s.last_event_ms >= oldest}
        self._by_profile = {k: s for k, s in self._by_profile.items() if s.last_event_ms >= oldest}

    def load(self, reader: duckdb.DuckDBPyConnection, now_ms: int) -> int:
        """Rebuild the state from the open live sessions of the `sessions` table."""
        rows = open_live_sessions(reader, now_ms - self.timeout_ms, BORROWED_COLUMNS)
        for project_id, session_id, device_id, profile_id, ended_ms, exit_path, exit_origin, *borrowed in rows:
            session = LiveSession(session_id, device_id, ended_ms, dict(zip(BORROWED_COLUMNS, borrowed, strict=True)),
                                  (exit_path, exit_origin))
            self._by_device[(project_id, device_id)] = session
            if profile_id != device_id:
                self._by_profile[(project_id, profile_id)] = session
        return len(rows)

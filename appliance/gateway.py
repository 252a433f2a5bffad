"""The gateway's long-lived parts and their lifecycle (DESIGN: "a written lifecycle").

`Gateway.open()` starts them in order (storage writer, then what needs it), `close()` stops them
in reverse after in-flight requests have finished. Route handlers reach them through
`request.app.state.gateway`; nothing here is created at import time.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from appliance.capacity import DiskGuard
from appliance.settings import ProjectSettings, Settings
from appliance.timestamps import DAY_MS
from storage.database import salts_for
from storage.writer import StorageWriter

log = logging.getLogger(__name__)


class Gateway:
    """Settings plus the open resources every request needs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.projects: dict[str, ProjectSettings] = settings.project_by_client_id()
        self.session_timeout_ms = settings.sessions.timeout_minutes * 60_000
        acceptance_window_ms = settings.limits.max_event_age_days * DAY_MS + self.session_timeout_ms
        self.writer = StorageWriter(
            settings.storage.path,
            duplicate_window_ms=acceptance_window_ms,
            checkpoint_wal_bytes=settings.storage.checkpoint_wal_bytes,
        )
        self.disk = DiskGuard(
            settings.storage.path,
            max_disk_bytes=settings.storage.max_disk_bytes,
            min_free_disk_bytes=settings.storage.min_free_disk_bytes,
        )
        self._salts: dict[dt.date, str] = {}
        self.started_at = time.time()

    def open(self) -> None:
        """Start the storage writer (opens and migrates the DuckDB file)."""
        self.writer.start()
        log.info("storage open at %s", self.settings.storage.path)

    def close(self) -> None:
        """Commit what is queued, checkpoint and close the file."""
        self.writer.stop()
        log.info("storage closed")

    async def salt_for(self, received_ms: int) -> str:
        """The daily device-id salt of the day `received_ms` falls in (created on first use)."""
        day = dt.datetime.fromtimestamp(received_ms / 1000, tz=dt.UTC).date()
        salt = self._salts.get(day)
        if salt is None:
            current, _previous = await self.writer.call(lambda connection: salts_for(connection, day))
            self._salts = {day: current}
            return current
        return salt

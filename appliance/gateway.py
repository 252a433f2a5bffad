"""The gateway's long-lived parts and their lifecycle (DESIGN: "a written lifecycle").

`Gateway.open()` starts them in order (geo database, user-agent parser, referrer table, then the
storage writer), `close()` stops them in reverse after in-flight requests have finished. Route
handlers reach them through `request.app.state.gateway`; nothing here is created at import time.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from appliance.capacity import DiskGuard
from appliance.enrich.client_ip import IPNetwork, parse_networks
from appliance.enrich.geo import GeoLocator
from appliance.enrich.referrer import ReferrerTable
from appliance.enrich.useragent import classify
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
        self.trusted_proxies: tuple[IPNetwork, ...] = parse_networks(settings.server.trusted_proxies)
        self._geo: GeoLocator | None = None
        self._referrers: ReferrerTable | None = None
        self._salts: dict[dt.date, str] = {}
        self.started_at = time.time()

    @property
    def geo(self) -> GeoLocator:
        assert self._geo is not None, "gateway is not open"
        return self._geo

    @property
    def referrers(self) -> ReferrerTable:
        assert self._referrers is not None, "gateway is not open"
        return self._referrers

    def open(self) -> None:
        """Open the readers, then the storage writer (opens and migrates the DuckDB file)."""
        self._geo = GeoLocator(self.settings.geo.database, self.settings.site)
        classify.cache_clear()
        classify("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")  # builds the parser now, not on a request
        self._referrers = ReferrerTable.bundled()
        self.writer.start()
        log.info("storage open at %s; geo database: %s", self.settings.storage.path,
                 self.settings.geo.database or "none (LAN addresses get the [site] location)")

    def close(self) -> None:
        """Commit what is queued, checkpoint and close the file, then the readers."""
        self.writer.stop()
        if self._geo is not None:
            self._geo.close()
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

"""The gateway's long-lived parts and their lifecycle (DESIGN: "a written lifecycle").

`Gateway.open()` starts them in order (geo database, user-agent parser, referrer table, the
storage writer with its diskcache locks, live session state), `close()` stops them in reverse
after in-flight requests have finished; the app's lifespan starts the scheduler after `open()`
and stops it before `close()`. Route handlers reach them through `request.app.state.gateway`;
nothing here is created at import time. Time comes from `clock` (epoch ms), so tests can move it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from appliance.admission import Admission
from appliance.auth import Authenticator
from appliance.capacity import DiskGuard
from appliance.enrich.client_ip import IPNetwork, parse_networks
from appliance.enrich.geo import GeoLocator
from appliance.enrich.referrer import ReferrerTable
from appliance.enrich.useragent import classify
from appliance.history import History, Sample, event_totals
from appliance.live_sessions import LiveSessions
from appliance.logs import RateLimitedLog
from appliance.metrics import GatewayMetrics
from appliance.properties import FlattenMemo, PropertyLimits
from appliance.settings import Settings
from appliance.timestamps import DAY_MS
from storage import ledger
from storage.database import memory_in_use
from storage.retention import delete_forwarded
from storage.writer import StorageWriter
from sync.clickhouse import Upstream
from sync.job import PassResult, SyncJob

log = logging.getLogger(__name__)

# Sessions closed per writer transaction (`close_quiet_sessions`). On a 2-core box a transaction
# of 2,000 takes ~45 ms with 200k quiet sessions stored, a cost that barely grows with the store
# (`bench/close.py`), less than an ingest commit, so a request queued behind one waits no longer
# than behind a commit, and a backlog closes at 40-45k sessions/s.
CLOSE_BATCH_SESSIONS = 2_000

T = TypeVar("T")
PREPARED_AT_ONCE = 1


class Gateway:
    """Settings plus the open resources every request needs."""

    def __init__(self, settings: Settings, clock: Callable[[], int] | None = None) -> None:
        self.settings = settings
        self.clock: Callable[[], int] = clock or (lambda: time.time_ns() // 1_000_000)
        self.auth = Authenticator(settings.projects)
        self.session_timeout_ms = settings.sessions.timeout_minutes * 60_000
        acceptance_window_ms = settings.limits.max_event_age_days * DAY_MS + self.session_timeout_ms
        self.writer = StorageWriter(
            settings.storage.path, cache_dir=settings.storage.cache_dir, duplicate_window_ms=acceptance_window_ms,
            memory_limit=settings.storage.memory_limit, threads=settings.storage.threads,
        )
        self.live = LiveSessions(self.session_timeout_ms)
        self.admission = Admission(settings.limits.max_pending_events)
        # Requests prepared (decoded, validated, enriched) at once, in a worker thread. Python
        # holds the GIL for that work, so more at once is no faster; each one holds its decoded
        # body, so more at once is more memory, and another thread taking turns at the GIL with
        # the event loop (50 clients: 503 answers' p99 220 ms with one, 480-770 ms with two).
        self._preparing = asyncio.Semaphore(PREPARED_AT_ONCE)
        self.sync: SyncJob | None = None
        if settings.upstream.url:
            self.sync = SyncJob(
                self.writer, self._connect_upstream, gateway_id=settings.gateway.id,
                batch_rows=settings.sync.batch_rows, interval_seconds=settings.sync.interval_seconds, clock=self.clock,
                set_deduplication_window=settings.upstream.set_deduplication_window,
            )
        self.disk = DiskGuard(
            settings.storage.path,
            max_disk_bytes=settings.storage.max_disk_bytes,
            min_free_disk_bytes=settings.storage.min_free_disk_bytes,
        )
        self.trusted_proxies: tuple[IPNetwork, ...] = parse_networks(settings.server.trusted_proxies)
        self.admin_networks: tuple[IPNetwork, ...] = parse_networks(settings.server.admin_networks)
        self.metrics_networks: tuple[IPNetwork, ...] = parse_networks(settings.server.metrics_networks)
        # Observability (appliance.metrics): counters fed by the request path, the writer and the
        # sync job; gauges set from `metrics_snapshot()` when /metrics is scraped.
        self.started_ms = self.clock()
        self.metrics = GatewayMetrics(settings.gateway.id, [project.id for project in settings.projects])
        self.writer.on_commit = self.metrics.commit_duration.observe
        # 401s and rejected rows: each cause logged once per interval, with the count held back.
        self.history = History()  # the last hour of numbers, for the status page's charts
        self.refusals = RateLimitedLog(logging.getLogger("appliance.refusals"),
                                       settings.logging.repeat_interval_seconds)
        if self.sync is not None:
            self.sync.on_pass = self._count_pass
        self._geo: GeoLocator | None = None
        self._referrers: ReferrerTable | None = None
        self._salts: dict[dt.date, tuple[str, str | None]] = {}
        limits = settings.limits
        self.property_limits = PropertyLimits(
            max_bytes=limits.max_properties_bytes, max_keys=limits.max_property_keys,
            max_array_items=limits.max_array_items, max_string_chars=limits.max_string_chars,
        )
        # The property objects already flattened under those limits (appliance.properties), kept
        # from request to request: a device sends the same context in every batch.
        self.flatten_memo = FlattenMemo()

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
        reader = self.writer.reader()
        try:
            live = self.live.load(reader, self.clock())
        finally:
            reader.close()
        log.info("storage open at %s (%d live sessions resumed); geo database: %s", self.settings.storage.path,
                 live, self.settings.geo.database or "none (LAN addresses get the [site] location)")

    def close(self) -> None:
        """Commit what is queued, checkpoint and close the file, then the readers."""
        if self.sync is not None:
            self.sync.close()
        self.writer.stop()
        if self._geo is not None:
            self._geo.close()
        log.info("storage closed")

    async def prepare(self, function: Callable[..., T], *args: Any) -> T:
        """Run a request's CPU-bound preparation in a worker thread, a few requests at a time."""
        async with self._preparing:
            return await asyncio.to_thread(function, *args)

    async def salts_for(self, received_ms: int) -> tuple[str, str | None]:
        """The device-id salt of the UTC day `received_ms` falls in (created on first use), and
        the previous day's, under which a visit that spans midnight keeps its session."""
        day = dt.datetime.fromtimestamp(received_ms / 1000, tz=dt.UTC).date()
        salts = self._salts.get(day)
        if salts is None:
            salts = await self.writer.call(lambda store: store.salts_for(day))
            self._salts = {day: salts}
        return salts

    def _connect_upstream(self) -> Upstream:
        upstream = self.settings.upstream
        return Upstream(upstream.url, upstream.database, timeout_seconds=upstream.timeout_seconds)

    def _stored_status(self) -> dict[str, Any]:
        """Backlog, quarantine, open sessions and DuckDB's memory, read on a cursor of their own
        (never the writer)."""
        reader = self.writer.reader()
        try:
            return {**ledger.status(reader), "duckdb_memory_bytes": memory_in_use(reader)}
        finally:
            reader.close()

    async def status(self) -> dict[str, Any]:
        """Backlog per table, quarantined rows, open sessions, last sync (for /admin/status)."""

        body = await asyncio.to_thread(self._stored_status)
        url = self.settings.upstream.url
        body["upstream"] = url.rpartition("@")[2] if url else None  # never the credentials
        last = self.sync.last_result if self.sync else None
        body["last_sync"] = msgspec.to_builtins(last) if last else None
        body["upstream_problems"] = last.problems if last else []
        return body

    # ---- observability -------------------------------------------------------------------------

    def _count_pass(self, result: PassResult) -> None:
        for table, rows in result.sent_rows.items():
            self.metrics.synced_rows.labels(table).inc(rows)
        if result.quarantined_rows:
            self.metrics.upstream_errors.labels("refused").inc(result.quarantined_rows)
        if result.error_kind is not None:
            self.metrics.upstream_errors.labels(result.error_kind).inc()

    def upstream_silence_ms(self) -> int | None:
        """How long the upstream has gone without a successful pass (since start when none has
        succeeded yet); None when there is no upstream."""
        if self.sync is None:
            return None
        since = self.sync.last_success_ms or self.started_ms
        return max(0, self.clock() - since)

    async def metrics_snapshot(self) -> dict[str, Any]:
        """Stored state for the gauges: backlog, quarantine, open sessions, writer queue, disk."""

        state = await asyncio.to_thread(self._stored_status)
        now_ms = self.clock()
        for entry in state["backlog"].values():
            oldest = entry.get("oldest_pending_batch")
            entry["oldest_pending_seconds"] = (
                max(0.0, now_ms / 1000 - dt.datetime.fromisoformat(oldest).replace(tzinfo=dt.UTC).timestamp())
                if oldest else 0.0)
        last_success = self.sync.last_success_ms if self.sync else None
        state.update(
            writer_queue_rows=self.writer.queued_rows(), writer_queue_requests=self.writer.backlog,
            pending_events=self.admission.pending_events,
            last_success_seconds=last_success / 1000 if last_success else 0.0,
            storage_bytes=self.disk.used_bytes(), disk_free_bytes=self.disk.free_bytes(),
            accepting=self.writer.running and self.disk.problem() is None,
        )
        return state

    async def sample_now(self) -> Sample:
        """The numbers of this moment (not kept)."""
        return Sample(*(await self._sample()))

    async def record_history(self) -> None:
        """Keep this moment's numbers for the status page's charts (a scheduled job)."""
        at, _, _, backlog_rows = await self._sample()
        self.history.add(at, self.metrics, backlog_rows)

    async def _sample(self) -> tuple[float, float, float, int]:
        def backlog_rows() -> int:
            reader = self.writer.reader()
            try:
                return sum(entry["rows"] for entry in ledger.backlog(reader).values())
            finally:
                reader.close()

        rows = await asyncio.to_thread(backlog_rows)
        totals = event_totals(self.metrics)
        return time.time(), totals["accepted"], totals["validation"] + totals["internal"], rows

    # ---- scheduled jobs (appliance.scheduler) ----------------------------------------------------

    async def close_quiet_sessions(self) -> int:
        """Emit `session_end` for every session quiet for the timeout; returns how many closed.

        A transaction per `CLOSE_BATCH_SESSIONS` sessions: the requests queued for the writer are
        committed between them, and no transaction grows with the backlog."""
        now = self.clock()
        closed = 0
        while True:
            batch = await self.writer.call(
                lambda store: store.close_sessions(now, self.session_timeout_ms, CLOSE_BATCH_SESSIONS))
            closed += batch
            if batch < CLOSE_BATCH_SESSIONS:
                break
        self.live.forget_quiet(now)
        if closed:
            log.info("closed %d sessions", closed)
        return closed

    async def checkpoint(self) -> None:
        """Checkpoint DuckDB between commits once its WAL has grown past the threshold."""
        threshold = self.settings.storage.checkpoint_wal_bytes
        await self.writer.call(lambda store: store.checkpoint_if_due(threshold))

    async def apply_retention(self) -> dict[str, int]:
        """Delete forwarded rows older than `storage.retention_days` (never unforwarded ones), then compact."""
        deleted = await delete_forwarded(self.writer, self.clock(), self.settings.storage.retention_days)
        deleted["session_start_keys"] = await self.writer.call(lambda store: store.locks.forget_expired())
        log.info("retention: deleted %s", deleted)
        # Scheduled checkpoints do not compact the store; once a day, after the deletes, one does.
        await self.writer.call(lambda store: store.compact())
        return deleted

    async def rotate_salt(self) -> None:
        """Create the new day's salt at midnight UTC, before the day's first request needs it."""
        await self.salts_for(self.clock())

"""Scheduled jobs (APScheduler 3.x, on the app's event loop): session closer, checkpoints, salts,
retention, upstream sync.

Started by the app's lifespan after the gateway has opened, shut down before it closes. Jobs
never overlap (`max_instances=1`, missed runs coalesce) and never run in a request; each one
does its database work through the writer thread, between commits. A failing job is logged and
runs again at its next time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from appliance.gateway import Gateway
from appliance.history import SAMPLE_SECONDS
from appliance.summary import IngestSummary

log = logging.getLogger(__name__)


def _guarded(name: str, job: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await job()
        except Exception:  # the job wrapper: log, keep the schedule
            log.exception("scheduled job %s failed; it runs again at its next time", name)
        except asyncio.CancelledError:
            # The event loop ends with a job still waiting (for the writer, the upstream): not a
            # failure, and APScheduler would log it as one, with a traceback, on every stop under load.
            log.info("scheduled job %s stopped: the server is shutting down", name)

    return run


def _summarise(summary: IngestSummary, gateway: Gateway) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        summary.log_line(gateway.writer.queued_rows())

    return run


def build_scheduler(gateway: Gateway) -> AsyncIOScheduler:
    """The gateway's jobs, not yet started."""
    settings = gateway.settings
    scheduler = AsyncIOScheduler(timezone=dt.UTC, job_defaults={"max_instances": 1, "coalesce": True})
    scheduler.add_job(_guarded("session-closer", gateway.close_quiet_sessions), "interval",
                      seconds=settings.sessions.close_interval_seconds, id="session-closer")
    scheduler.add_job(_guarded("checkpoint", gateway.checkpoint), "interval",
                      seconds=settings.storage.checkpoint_interval_seconds, id="checkpoint")
    scheduler.add_job(_guarded("salt-rotation", gateway.rotate_salt), "cron", hour=0, minute=0, second=0,
                      id="salt-rotation")
    scheduler.add_job(_guarded("retention", gateway.apply_retention), "cron", hour=3, minute=17, id="retention")
    # The first sample is taken by the lifespan before the first request (appliance.app).
    scheduler.add_job(_guarded("status-history", gateway.record_history), "interval", seconds=SAMPLE_SECONDS,
                      id="status-history")
    if settings.logging.summary_interval_seconds > 0:
        summary = IngestSummary(gateway.metrics)
        scheduler.add_job(_guarded("ingest-summary", _summarise(summary, gateway)), "interval",
                          seconds=settings.logging.summary_interval_seconds, id="ingest-summary")
    if gateway.sync is not None:
        scheduler.add_job(_guarded("upstream-sync", gateway.sync.run_scheduled), "interval",
                          seconds=settings.sync.interval_seconds, id="upstream-sync")
    return scheduler

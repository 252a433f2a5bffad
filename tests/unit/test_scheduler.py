"""Scheduled jobs under the real APScheduler on a real event loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from appliance.scheduler import _guarded


def _run_one_job(job: object) -> None:
    """Start `job` now on a scheduler, let it begin, shut down; `asyncio.run` then cancels
    whatever is still running, as the server's shutdown does."""

    async def main() -> None:
        scheduler = AsyncIOScheduler(timezone=dt.UTC)
        scheduler.add_job(job, "date", run_date=dt.datetime.now(dt.UTC))
        scheduler.start()
        await asyncio.sleep(0.2)
        scheduler.shutdown(wait=False)

    asyncio.run(main())


def test_a_job_cut_short_by_shutdown_is_not_reported_as_failed(caplog: pytest.LogCaptureFixture) -> None:
    started = []

    async def waits_for_the_writer() -> None:
        started.append(True)
        await asyncio.Event().wait()  # a writer call still queued when the server stops

    caplog.set_level(logging.INFO)
    _run_one_job(_guarded("checkpoint", waits_for_the_writer))
    assert started
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []
    assert any("checkpoint" in record.getMessage() and "shutting down" in record.getMessage()
               for record in caplog.records)


def test_a_failing_job_is_logged_with_its_name(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise RuntimeError("disk gone")

    _run_one_job(_guarded("retention", fails))
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "retention" in errors[0].getMessage() and errors[0].exc_info is not None

"""systemd's watchdog is fed only while the storage writer answers (appliance.server.feed_watchdog).

A real writer on a real DuckDB file, held by a call that takes long (what a stuck commit or
checkpoint looks like from the outside), and a real datagram socket standing in for systemd's
`NOTIFY_SOCKET`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from pathlib import Path

import pytest

from appliance.notify import Notifier
from appliance.server import feed_watchdog
from storage.writer import StorageWriter


def _received(listener: socket.socket) -> list[str]:
    messages = []
    with contextlib.suppress(BlockingIOError):
        while True:
            messages.append(listener.recv(4096).decode())
    return messages


def test_the_watchdog_is_fed_only_while_the_writer_answers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    writer = StorageWriter(str(tmp_path / "g.duckdb"), cache_dir=str(tmp_path / "cache"), duplicate_window_ms=10**9)
    writer.start()
    address = tmp_path / "notify.sock"
    release = threading.Event()

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
            listener.bind(str(address))
            listener.setblocking(False)
            feeder = asyncio.create_task(feed_watchdog(writer, Notifier(str(address)), interval=0.1, timeout=0.3))
            try:
                await asyncio.sleep(0.6)
                while_free = _received(listener)
                stuck = asyncio.ensure_future(writer.call(lambda _store: release.wait(30)))
                await asyncio.sleep(0.5)  # a feed already under way may still land
                _received(listener)
                await asyncio.sleep(1.5)
                while_stuck = _received(listener)
                release.set()
                await stuck
                await asyncio.sleep(0.6)
                after = _received(listener)
            finally:
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feeder
        return while_free, while_stuck, after

    try:
        with caplog.at_level(logging.ERROR, logger="appliance.server"):
            while_free, while_stuck, after = asyncio.run(scenario())
    finally:
        release.set()
        writer.stop()
    assert len(while_free) >= 3 and set(while_free) == {"WATCHDOG=1"}
    assert while_stuck == []
    assert len(after) >= 2 and set(after) == {"WATCHDOG=1"}
    assert any("storage writer did not answer within 0.3s (TimeoutError)" in record.getMessage()
               for record in caplog.records)

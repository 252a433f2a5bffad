"""uvicorn's server with the gateway's lifecycle around it: ready, watchdog, reload, stop.

Input: the uvicorn config, the app, the settings and the config file's path. Output, in order:
- the lifespan opens the store; a failure there is kept as one line (`startup_error`) instead of
  uvicorn's traceback, and the server exits;
- once the store is open and the socket answers: the address file, "gateway listening on URL"
  on stdout, and `READY=1` to systemd;
- while running: `WATCHDOG=1` every half `WatchdogSec`, but only after a no-op call through the
  storage writer came back (a writer stuck in a commit stops the feeding, and systemd restarts
  the service); SIGHUP re-reads `[logging]` from the config file;
- on SIGTERM: `STOPPING=1`, then uvicorn's graceful shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from pathlib import Path

import uvicorn
from litestar import Litestar

from appliance import __version__
from appliance.logs import configure_logging
from appliance.notify import Notifier, watchdog_interval_seconds
from appliance.settings import Settings, SettingsError, load_settings
from storage.writer import StorageWriter

log = logging.getLogger(__name__)


class _DropDuringStartup(logging.Filter):
    """Holds back uvicorn's multi-line startup failure report; the one-line reason replaces it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


class ManagedServer(uvicorn.Server):
    """A uvicorn server that announces readiness and feeds systemd's watchdog."""

    def __init__(self, config: uvicorn.Config, app: Litestar, settings: Settings, config_path: str,
                 address_file: Path) -> None:
        super().__init__(config)
        self.app = app
        self.settings = settings
        self.config_path = config_path
        self.address_file = address_file
        self.notifier = Notifier.from_environment()
        self.startup_error: str | None = None
        self._watchdog: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        quiet = _DropDuringStartup()
        uvicorn_log = logging.getLogger("uvicorn.error")
        uvicorn_log.addFilter(quiet)
        try:
            await super().startup(sockets)
        except SystemExit:
            self.startup_error = getattr(self.app.state, "startup_error", None) or "the application did not start"
            self.should_exit = True
            return
        finally:
            uvicorn_log.removeFilter(quiet)
        if self.should_exit:
            return
        self._announce(sockets or [])
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        interval = watchdog_interval_seconds()
        if interval is not None and self.notifier.enabled:
            self._watchdog = asyncio.create_task(self._feed_watchdog(interval), name="systemd-watchdog")

    def _announce(self, sockets: list[socket.socket]) -> None:
        host, port = sockets[0].getsockname()[:2] if sockets else (self.settings.server.host, self.settings.server.port)
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        # Where operator commands find this gateway (the config may say port 0).
        try:
            self.address_file.parent.mkdir(parents=True, exist_ok=True)
            self.address_file.write_text(url + "\n")
        except OSError as exc:  # a full disk must not stop the gateway from starting (it answers 503)
            log.warning("cannot write %s (%s); operator commands need the address given", self.address_file, exc)
        print(f"gateway listening on {url}", flush=True)
        log.info("edge-gateway %s (%s) ready on %s", __version__, self.settings.gateway.id, url)
        self.notifier.send("READY=1", f"STATUS=accepting events on {url}")

    async def _feed_watchdog(self, interval: float) -> None:
        timeout = min(interval, self.settings.health.watchdog_writer_timeout_seconds)
        await feed_watchdog(self.app.state.gateway.writer, self.notifier, interval, timeout)

    def reload(self) -> None:
        """SIGHUP: re-read `[logging]`; anything else in the file needs a restart."""
        try:
            settings = load_settings(self.config_path)
        except SettingsError as exc:
            log.error("SIGHUP: config not reloaded, the running settings stay: %s", exc)
            return
        configure_logging(settings.logging)
        log.warning("SIGHUP: logging reloaded (level %s, format %s); other changes need a restart",
                    settings.logging.level, settings.logging.format)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.notifier.send("STOPPING=1", "STATUS=stopping: finishing requests, then commit and checkpoint")
        log.info("stopping: finishing in-flight requests")
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        try:
            await super().shutdown(sockets)
        finally:
            self.address_file.unlink(missing_ok=True)


async def feed_watchdog(writer: StorageWriter, notifier: Notifier, interval: float, timeout: float) -> None:
    """Every `interval`, send `WATCHDOG=1` if a no-op call through the writer came back within
    `timeout`: a writer stuck in a commit or checkpoint stops the feeding, and systemd restarts us."""
    while True:
        try:
            await asyncio.wait_for(writer.call(_no_op), timeout)
        except Exception as exc:  # noqa: BLE001 - any failure means: do not feed
            log.error("storage writer did not answer within %gs (%s): not feeding the systemd watchdog",
                      timeout, type(exc).__name__)
        else:
            notifier.send("WATCHDOG=1")
        await asyncio.sleep(interval)


def _no_op(_: object) -> None:
    return None

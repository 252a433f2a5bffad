"""Logging: one format for every line, a level, and rate limits for noisy causes.

Input: the `[logging]` settings. Output: the root logger writing to stderr (journald under
systemd) as `text` (`2025-01-31T12:00:00.123Z INFO appliance.gateway: message`) or `json` (one
object per line: `time`, `level`, `logger`, `message`, and `exception` when there is one).
uvicorn's loggers are routed through the same handler; APScheduler, clickhouse-connect, urllib3
and uvicorn chatter only from WARNING up, whatever the level (their narration of a failure the
gateway reports itself: only from ERROR).

`RateLimitedLog` is for causes that can repeat thousands of times a minute (a kiosk with a wrong
secret, a client sending bad rows): the first line of each cause is logged at once, repeats in
the next `interval_seconds` are counted and reported in one line when the cause comes back.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import threading
import time
from typing import Any

import msgspec

from appliance.settings import LoggingSettings

# Third-party loggers that narrate routine work at INFO ("Running job ...", "Started server process").
QUIET_LOGGERS = ("apscheduler", "clickhouse_connect", "urllib3", "httpx", "httpcore", "uvicorn", "uvicorn.error",
                 "uvicorn.access", "asyncio", "litestar")
# urllib3 warns of each retry of a failed connection ("Retrying (Retry(total=0, ...)") and
# clickhouse-connect's HTTP client of each failure it then raises ("Unexpected Http Driver
# Exception"): the gateway reports that failure itself in one line (a sync pass, `upstream-init`),
# so from these only errors.
FAILURE_NARRATORS = ("urllib3.connectionpool", "clickhouse_connect.driver.httpclient",
                     "clickhouse_connect.driver._backend")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_JSON = msgspec.json.Encoder()


def _timestamp(record: logging.LogRecord) -> str:
    moment = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message`, the exception's traceback indented below it."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"time": _timestamp(record), "level": record.levelname, "logger": record.name,
                                 "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _JSON.encode(entry).decode()


def configure_logging(settings: LoggingSettings) -> None:
    """Install the one handler on the root logger (again on reload: never a second handler)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_gateway", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._gateway = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    root.addHandler(handler)
    level = _LEVELS[settings.level]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        third_party = logging.getLogger(name)
        third_party.handlers.clear()  # uvicorn installs its own; ours is the only format
        third_party.propagate = True
        third_party.setLevel(max(level, logging.WARNING))
    for name in FAILURE_NARRATORS:
        logging.getLogger(name).setLevel(max(level, logging.ERROR))


class RateLimitedLog:
    """Logs a cause at most once per `interval_seconds`, with the count of what was held back."""

    def __init__(self, logger: logging.Logger, interval_seconds: float, max_causes: int = 1000) -> None:
        self._logger = logger
        self._interval = interval_seconds
        self._max_causes = max_causes
        self._causes: dict[str, tuple[float, int]] = {}  # cause -> (last logged at, held back since)
        self._lock = threading.Lock()

    def log(self, level: int, cause: str, message: str, *args: object) -> bool:
        """Log `message % args` unless `cause` was logged less than the interval ago; True when logged."""
        now = time.monotonic()
        with self._lock:
            logged_at, held = self._causes.get(cause, (float("-inf"), 0))
            if now - logged_at < self._interval:
                self._causes[cause] = (logged_at, held + 1)
                return False
            if len(self._causes) >= self._max_causes:  # many distinct causes: forget the oldest
                oldest = min(self._causes, key=lambda key: self._causes[key][0])
                del self._causes[oldest]
            self._causes[cause] = (now, 0)
        if held:
            message += " (%d more like it in the last %.0fs)"
            args = (*args, held, now - logged_at)
        self._logger.log(level, message, *args)
        return True

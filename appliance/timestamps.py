"""Event time from `__timestamp` (docs/contract.md §4).

Input: the raw `__timestamp` value and the request's receive time (epoch ms). Output: the
event's time in epoch milliseconds (UTC), or `TooOld` when it is past the acceptance window.
Unparseable values fall back to the receive time, as do values too far in the future: devices
with a wrong clock still get their events stored, at the time we saw them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The acceptance window of one request."""

    received_ms: int
    max_age_days: int
    future_tolerance_seconds: int

    @property
    def oldest_ms(self) -> int:
        return self.received_ms - self.max_age_days * DAY_MS

    @property
    def newest_ms(self) -> int:
        return self.received_ms + self.future_tolerance_seconds * 1000


class TooOld(Exception):
    """The event is older than the age limit; the message is the client-facing reason."""


def parse_timestamp_ms(value: Any) -> int | None:
    """ISO-8601 text or epoch milliseconds (number or digit string) → epoch ms; None if neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value) if math.isfinite(value) else None
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.isdigit():
        return int(text)
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    # Integer arithmetic: float seconds would turn .123 into 122 ms now and then.
    return (parsed - _EPOCH) // _ONE_MS


def event_time_ms(raw_timestamp: Any, window: TimeWindow) -> int:
    """The time an event is stored under; raises TooOld past the age limit."""
    parsed = parse_timestamp_ms(raw_timestamp) if raw_timestamp is not None else None
    if parsed is None or parsed > window.newest_ms:
        return window.received_ms
    if parsed < window.oldest_ms:
        raise TooOld(f"event is older than {window.max_age_days} days")
    return parsed

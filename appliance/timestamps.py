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
# Epoch milliseconds the gateway can represent: years 1 to 9999, as Python's datetime. Anything
# else is no time at all (docs/contract.md §4: it does not parse), never an overflow further down the path.
_EARLIEST_MS = -62_135_596_800_000
_LATEST_MS = 253_402_300_799_999
_MAX_DIGITS = len(str(_LATEST_MS))
_NUMBERS = (int, float)  # made once: `int | float` would build a union on every call


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
    if isinstance(value, _NUMBERS):
        return _in_range(int(value)) if math.isfinite(value) else None
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    text = value.strip()
    # str.isdigit() is true for "²" and "①", which int() refuses; only ASCII digits are a number.
    if text.isascii() and text.isdigit():
        return _in_range(int(text)) if len(text) <= _MAX_DIGITS else None
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        # Integer arithmetic: float seconds would turn .123 into 122 ms now and then.
        return _in_range((parsed - _EPOCH) // _ONE_MS)
    except OverflowError:  # year 1 with a positive offset
        return None


def _in_range(epoch_ms: int) -> int | None:
    return epoch_ms if _EARLIEST_MS <= epoch_ms <= _LATEST_MS else None


def event_time_ms(raw_timestamp: Any, window: TimeWindow) -> int:
    """The time an event is stored under; raises TooOld past the age limit."""
    parsed = parse_timestamp_ms(raw_timestamp) if raw_timestamp is not None else None
    if parsed is None or parsed > window.newest_ms:
        return window.received_ms
    if parsed < window.oldest_ms:
        raise TooOld(f"event is older than {window.max_age_days} days")
    return parsed

"""Event time rules of docs/contract.md §4."""

from __future__ import annotations

import pytest

from appliance.timestamps import DAY_MS, TimeWindow, TooOld, event_time_ms, parse_timestamp_ms

RECEIVED = 1_780_920_000_000
WINDOW = TimeWindow(RECEIVED, max_age_days=5, future_tolerance_seconds=60)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-06-08T12:00:00Z", 1780920000000),
        ("2026-06-08T12:00:00.123Z", 1780920000123),
        ("2026-06-08T14:00:00.123+02:00", 1780920000123),
        ("2026-06-08T12:00:00", 1780920000000),  # no zone: UTC
        (1780920000123, 1780920000123),
        (1780920000123.0, 1780920000123),
        ("1780920000123", 1780920000123),
        ("yesterday", None),
        ("", None),
        (True, None),
        ({"a": 1}, None),
        # str.isdigit() holds for these, int() refuses them: they are no time at all, never an error.
        ("²", None),
        ("①", None),
        ("١٢٣", None),
        ("1" * 5000, None),
        ("9" * 19, None),
        (1e300, None),
        (-(10**30), None),
        ("0001-01-01T00:00:00+01:00", None),
        ("9999-12-31T23:59:59.999Z", 253402300799999),
    ],
)
def test_parse(value: object, expected: int | None) -> None:
    assert parse_timestamp_ms(value) == expected


def test_missing_or_unparseable_is_receive_time() -> None:
    assert event_time_ms(None, WINDOW) == RECEIVED
    assert event_time_ms("not a time", WINDOW) == RECEIVED


def test_four_days_old_is_kept() -> None:
    assert event_time_ms(RECEIVED - 4 * DAY_MS, WINDOW) == RECEIVED - 4 * DAY_MS


def test_exactly_at_the_limit_is_kept_and_one_ms_older_rejected() -> None:
    assert event_time_ms(RECEIVED - 5 * DAY_MS, WINDOW) == RECEIVED - 5 * DAY_MS
    with pytest.raises(TooOld, match="older than 5 days"):
        event_time_ms(RECEIVED - 5 * DAY_MS - 1, WINDOW)


def test_future_within_tolerance_kept_beyond_clamped() -> None:
    assert event_time_ms(RECEIVED + 59_000, WINDOW) == RECEIVED + 59_000
    assert event_time_ms(RECEIVED + 60_000, WINDOW) == RECEIVED + 60_000
    assert event_time_ms(RECEIVED + 60_001, WINDOW) == RECEIVED
    assert event_time_ms(RECEIVED + 120_000, WINDOW) == RECEIVED

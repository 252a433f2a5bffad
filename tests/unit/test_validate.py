"""Per-row validation (docs/contract.md §3.2): each rule, with the message naming the field."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from appliance.outcomes import Reason, Rejection
from appliance.timestamps import DAY_MS, TimeWindow
from appliance.validate import ValidEvent, validate_item

RECEIVED = 1_780_920_000_000
WINDOW = TimeWindow(RECEIVED, max_age_days=5, future_tolerance_seconds=60)


def check(item: Any) -> ValidEvent | Rejection:
    raw = item if isinstance(item, bytes) else msgspec.json.encode(item)
    return validate_item(7, raw, WINDOW)


def rejected(item: Any) -> str:
    outcome = check(item)
    assert isinstance(outcome, Rejection), outcome
    assert outcome.index == 7
    assert outcome.reason is Reason.VALIDATION
    return outcome.error


def accepted(item: Any) -> ValidEvent:
    outcome = check(item)
    assert isinstance(outcome, ValidEvent), outcome
    return outcome


def track(name: Any = "tap", **payload: Any) -> dict[str, Any]:
    return {"type": "track", "payload": {"name": name, **payload}}


def test_plain_track_is_valid() -> None:
    event = accepted(track(properties={"a": 1}, profileId=42, groups=["g1"]))
    assert event.kind == "track"
    assert event.profile_id == "42"
    assert event.event_ms == RECEIVED


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (track(""), "payload.name: must not be empty"),
        (track("x" * 81), "payload.name: must be at most 80 characters, got 81"),
        (track("a\nb"), "payload.name: must not contain line breaks"),
        (track("session_start"), "payload.name: session_start is reserved"),
        (track("session_end"), "payload.name: session_end is reserved"),
        (track(5), "payload.name: expected `str`, got `int`"),
        ({"type": "track", "payload": {}}, "payload: object missing required field `name`"),
        ({"type": "track"}, "item: object missing required field `payload`"),
        ({"payload": {"name": "x"}}, "item: object missing required field `type`"),
        ({"type": "pageview", "payload": {}}, "type: unknown event type 'pageview'"),
        (track(properties=[1]), "payload.properties: expected `object`, got `array`"),
        (track(groups=["ok", ""]), "payload.groups[1]: must not be empty"),
        (track(profileId=True), "payload.profileId"),
        ({"type": "alias", "payload": {"profileId": "a", "alias": "b"}}, "type: alias is not supported"),
        ({"type": "identify", "payload": {}}, "payload: object missing required field `profileId`"),
        ({"type": "identify", "payload": {"profileId": " "}}, "payload.profileId: is required"),
        ({"type": "identify", "payload": {"profileId": "u", "email": "nope"}}, "payload.email: not a valid email"),
        ({"type": "identify", "payload": {"profileId": "u", "avatar": "ftp://x"}}, "payload.avatar: must be an http(s) URL"),
        ({"type": "increment", "payload": {"profileId": "u", "property": "a..b"}}, "payload.property: must be a dotted path"),
        ({"type": "decrement", "payload": {"profileId": "u", "property": "a", "value": 0}}, "payload.value: must be a positive number"),
        ({"type": "decrement", "payload": {"profileId": "u", "property": "a", "value": -2}}, "payload.value: must be a positive number"),
        ({"type": "group", "payload": {"id": "g", "type": "", "name": "n"}}, "payload.type: must not be empty"),
        ({"type": "assign_group", "payload": {"groupIds": []}}, "payload.groupIds: must hold at least one"),
        ({"type": "replay", "payload": {"chunk_index": 70000, "events_count": 1, "is_full_snapshot": True,
          "started_at": "2026-06-08T12:00:00Z", "ended_at": "2026-06-08T12:00:01Z", "payload": "x"}},
         "payload.chunk_index: must be between 0 and 65535"),
        ({"type": "replay", "payload": {"chunk_index": 0, "events_count": 70000, "is_full_snapshot": True,
          "started_at": "2026-06-08T12:00:00Z", "ended_at": "2026-06-08T12:00:01Z", "payload": "x"}},
         "payload.events_count: must be between 1 and 65535"),
        ({"type": "replay", "payload": {"chunk_index": 0, "events_count": 1, "is_full_snapshot": True,
          "started_at": "soon", "ended_at": "2026-06-08T12:00:01Z", "payload": "x"}},
         "payload.started_at: must be an ISO-8601 time"),
        (track(properties={"__ip": "999.1.1.1"}), "payload.properties.__ip: '999.1.1.1' is not an IP address"),
        (track(properties={"__insertId": ""}), "payload.properties.__insertId: must be a string of 1-64"),
        (track(properties={"__insertId": "x" * 65}), "payload.properties.__insertId: must be a string of 1-64"),
        (track("revenue", properties={"__revenue": 9.99}), "payload.properties.__revenue: must be a non-negative integer"),
        (track("revenue", properties={"__revenue": -1}), "payload.properties.__revenue: must be a non-negative integer"),
        (track(properties={"__timestamp": RECEIVED - 5 * DAY_MS - 60_000}), "payload.properties.__timestamp: event is older than 5 days"),
        (b'{"type": "track", "payload": {"name": "\xff"}}', "item: strings must be valid UTF-8"),
        (b'{"type": "track", "payload": {"name": "x", "properties": {"v": NaN}}}', "item: not valid JSON"),
        (b'{"type": "track", "payload": {"name": "x", "properties": {"v": 1e999}}}', "number out of range"),
        (b'{"type": "track", "payload": {"name": "x"', "item: not valid JSON"),
    ],
)
def test_rejections_name_the_problem(item: Any, message: str) -> None:
    assert message in rejected(item)


def test_depth_eight_is_allowed_nine_is_not() -> None:
    def nested(levels: int) -> dict[str, Any]:
        value: dict[str, Any] = {"leaf": 1}
        for _ in range(levels - 1):
            value = {"n": value}
        return value

    accepted(track(properties=nested(8)))
    assert "nested deeper than 8 levels" in rejected(track(properties=nested(9)))


def test_hostile_depth_does_not_crash() -> None:
    raw = b'{"type":"track","payload":{"name":"x","properties":' + b'{"a":' * 5000 + b"1" + b"}" * 5002 + b"}"
    outcome = check(raw)
    assert isinstance(outcome, Rejection)


def test_special_properties_are_read() -> None:
    event = accepted(
        track(
            "revenue",
            properties={
                "__ip": " 2001:db8::1 ",
                "__deviceId": "  kiosk-7  ",
                "__insertId": "abc",
                "__revenue": 1299,
                "__timestamp": RECEIVED - DAY_MS,
            },
        )
    )
    assert event.ip_override == "2001:db8::1"
    assert event.device_id_override == "kiosk-7"
    assert event.insert_id == "abc"
    assert event.revenue == 1299
    assert event.event_ms == RECEIVED - DAY_MS


@pytest.mark.parametrize("value", ["", "   ", "x" * 65, 17])
def test_unusable_device_id_is_ignored(value: Any) -> None:
    assert accepted(track(properties={"__deviceId": value})).device_id_override is None


def test_valid_types_pass() -> None:
    accepted({"type": "identify", "payload": {"profileId": "u1", "email": "a@b.co", "avatar": "https://x/y.png"}})
    accepted({"type": "increment", "payload": {"profileId": "u1", "property": "stats.visits"}})
    accepted({"type": "decrement", "payload": {"profileId": 7, "property": "credits", "value": 2.5}})
    accepted({"type": "group", "payload": {"id": "g1", "type": "company", "name": "Acme"}})
    accepted({"type": "assign_group", "payload": {"groupIds": ["g1"], "profileId": "u1"}})
    accepted({"type": "replay", "payload": {"chunk_index": 3, "events_count": 10, "is_full_snapshot": False,
              "started_at": "2026-06-08T12:00:00Z", "ended_at": "2026-06-08T12:00:01Z", "payload": "[]"}})


def test_unknown_payload_fields_are_allowed() -> None:
    accepted(track(extra="sdk adds fields over time"))


def test_groups_null_is_no_groups() -> None:
    # OpenPanel's track schema takes `groups: null` (nullish) as absent.
    event = accepted(track(groups=None))
    assert isinstance(event.item.payload, msgspec.Struct) and event.item.payload.groups is None


def test_revenue_outside_revenue_events_is_ignored() -> None:
    # OpenPanel checks `__revenue` only on events named `revenue`; elsewhere it is dropped.
    for value in (100, "12.50", -3, None):
        event = accepted(track("checkout", properties={"__revenue": value, "step": 3}))
        assert event.revenue == 0
        assert event.flat_properties == {"step": "3"}
    identify = accepted({"type": "identify", "payload": {"profileId": "u", "properties": {"__revenue": 5}}})
    assert identify.revenue == 0


def test_revenue_needs_the_secret() -> None:
    def from_browser(item: dict[str, Any]) -> ValidEvent | Rejection:
        return validate_item(3, msgspec.json.encode(item), WINDOW, revenue_allowed=False)

    for item in (track("revenue", properties={"__revenue": 1299}), track("checkout", properties={"__revenue": 5}),
                 {"type": "identify", "payload": {"profileId": "u", "properties": {"__revenue": 5}}}):
        outcome = from_browser(item)
        assert isinstance(outcome, Rejection) and outcome.index == 3 and outcome.reason is Reason.VALIDATION
        assert outcome.error.startswith("payload.properties.__revenue: revenue needs the client secret")
    # Without `__revenue` (or with a null one) a browser's revenue-named event is just an event.
    assert isinstance(from_browser(track("revenue", properties={"__revenue": None})), ValidEvent)
    assert isinstance(from_browser(track("revenue")), ValidEvent)

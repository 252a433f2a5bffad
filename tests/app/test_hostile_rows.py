"""Hostile rows in a batch: each is refused on its own, cheaply, and its neighbours are stored.

Reproduces the findings of "hostile inputs": amplification through huge arrays and key counts,
500s on odd digit strings in timestamps, and a lone surrogate failing a whole batch.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import maxminddb
import pytest

from tests.app.conftest import AppClient
from tests.helpers import AUTH, track


def post_raw(app: AppClient, body: bytes, **headers: str) -> Any:
    return app.http.post("/track/batch", content=body, headers={**AUTH, **headers})


def post_batch(app: AppClient, events: list[Any]) -> Any:
    return post_raw(app, json.dumps({"events": events}).encode())


def stored_insert_ids(app: AppClient) -> list[str]:
    rows = app.rows("SELECT json_extract_string(properties, '$.__insertId') FROM events "
                    "WHERE name NOT IN ('session_start', 'session_end')")
    return sorted(row[0] for row in rows)


@pytest.mark.parametrize("timestamp", ["²", "①", "1" * 5000, "9" * 25, "١٢٣"])
def test_odd_digit_timestamps_are_now_and_neighbours_are_stored(app_client: AppClient, timestamp: str) -> None:
    events = [track("good", insert_id="g1"), track("odd", insert_id="odd", __timestamp=timestamp),
              track("good", insert_id="g2")]
    response = post_batch(app_client, events)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    assert stored_insert_ids(app_client) == ["g1", "g2", "odd"]


@pytest.mark.parametrize("started_at", ["²", "①", "1" * 5000, "99999999999999999"])
def test_odd_replay_times_are_validation_errors_of_their_row(app_client: AppClient, started_at: str) -> None:
    replay = {"type": "replay", "payload": {"chunk_index": 0, "events_count": 1, "is_full_snapshot": True,
                                            "started_at": started_at, "ended_at": "2026-01-01T00:00:00Z",
                                            "payload": "[]"}}
    response = post_batch(app_client, [track("good", insert_id="g1"), replay])
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"] == [{"index": 1, "reason": "validation",
                                 "error": "payload.started_at: must be an ISO-8601 time"}]
    assert stored_insert_ids(app_client) == ["g1"]
    assert app_client.count("session_replay_chunks") == 0


def test_single_event_with_odd_timestamp_is_stored(app_client: AppClient) -> None:
    response = app_client.http.post("/track", json=track("odd", insert_id="t1", __timestamp="²"), headers=AUTH)
    assert response.status_code == 200, response.text


def test_a_lone_surrogate_refuses_only_its_row(app_client: AppClient) -> None:
    good = [json.dumps(track("good", insert_id=f"g{n}")) for n in range(1999)]
    lone = '{"type":"track","payload":{"name":"bad","properties":{"__insertId":"bad","x":"\\ud800"}}}'
    body = ('{"events":[' + ",".join([*good[:1000], lone, *good[1000:]]) + "]}").encode()
    response = post_raw(app_client, body)
    assert response.status_code == 202, response.text
    result = response.json()
    assert result["accepted"] == 1999
    assert result["rejected"] == [{"index": 1000, "reason": "validation",
                                   "error": "strings must be valid Unicode (lone surrogate escape)"}]
    assert len(stored_insert_ids(app_client)) == 1999 and "bad" not in stored_insert_ids(app_client)


def test_a_lone_surrogate_in_a_single_event_is_400(app_client: AppClient) -> None:
    body = b'{"type":"track","payload":{"name":"bad","properties":{"x":"\\udfff"}}}'
    response = app_client.http.post("/track", content=body, headers=AUTH)
    assert response.status_code == 400
    assert "lone surrogate" in response.json()["message"]
    assert app_client.count() == 0


def test_a_valid_surrogate_pair_is_stored(app_client: AppClient) -> None:
    body = b'{"events":[{"type":"track","payload":{"name":"emoji","properties":{"x":"\\ud83d\\ude00"}}}]}'
    assert post_raw(app_client, body).json()["accepted"] == 1
    assert app_client.rows("SELECT json_extract_string(properties, '$.x') FROM events WHERE name = 'emoji'") == [
        ("\U0001F600",)]


def test_millions_of_tiny_array_items_refuse_the_row_unread(app_client: AppClient) -> None:
    # The amplification body: a few KiB of gzip holding one event with ~5 million array items.
    hostile = b'{"type":"track","payload":{"name":"boom","properties":{"a":[' + b"0," * 5_000_000 + b"0]}}}"
    body = b'{"events":[' + json.dumps(track("good", insert_id="g1")).encode() + b"," + hostile + b"]}"
    compressed = gzip.compress(body)
    assert len(compressed) < 20_000
    properties_bytes = len(b'{"a":[') + 2 * 5_000_000 + len(b"0]}")
    response = post_raw(app_client, compressed, **{"content-encoding": "gzip"})
    assert response.status_code == 202, response.text
    result = response.json()
    assert result["accepted"] == 1
    assert result["rejected"] == [{"index": 1, "reason": "validation",
                                   "error": f"payload.properties: larger than 65536 bytes ({properties_bytes})"}]
    assert stored_insert_ids(app_client) == ["g1"]


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"a": list(range(1001))}, "payload.properties: a: more than 1000 array items"),
        ({f"k{n}": 1 for n in range(1001)}, "payload.properties: more than 1000 keys"),
        ({"a": "x" * 16385}, "payload.properties: a: string longer than 16384 characters"),
        ({"n" * 4000: {"m" * 4000: list(range(20))}}, "payload.properties: more than 65536 bytes once flattened"),
    ],
)
def test_property_limits_refuse_the_row_with_a_reason(app_client: AppClient, properties: dict[str, Any],
                                                      message: str) -> None:
    response = post_batch(app_client, [{"type": "track", "payload": {"name": "x", "properties": properties}},
                                       track("good", insert_id="g1")])
    assert response.status_code == 202
    assert response.json()["rejected"] == [{"index": 0, "reason": "validation", "error": message}]
    assert stored_insert_ids(app_client) == ["g1"]


def test_stored_properties_stay_within_the_limit(app_client: AppClient) -> None:
    properties = {"a": list(range(999))}  # 1000 keys: "a" and its items
    assert post_batch(app_client, [{"type": "track", "payload": {"name": "x", "properties": properties}}]
                      ).json()["accepted"] == 1
    (length,) = app_client.rows("SELECT max(length(properties)) FROM events WHERE name = 'x'")[0]
    assert length < 65536


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"name": "x", "groups": ["g"] * 1001}, "payload.groups: more than 1000 items"),
        ({"name": "x", "profileId": "p" * 16385}, "payload.profileId: longer than 16384 characters"),
    ],
)
def test_lists_and_strings_outside_properties_are_bounded(app_client: AppClient, payload: dict[str, Any],
                                                          message: str) -> None:
    response = post_batch(app_client, [{"type": "track", "payload": payload}])
    assert response.json()["rejected"] == [{"index": 0, "reason": "validation", "error": message}]


def test_a_huge_groups_list_is_refused_before_it_is_decoded(app_client: AppClient) -> None:
    item = b'{"type":"assign_group","payload":{"groupIds":[' + b'"g",' * 1_000_000 + b'"g"]}}'
    response = post_raw(app_client, b'{"events":[' + item + b"]}")
    assert response.json()["rejected"] == [{"index": 0, "reason": "validation",
                                            "error": "payload.groupIds: more than 1000 items"}]


def test_millions_of_items_in_the_envelope_are_400_without_building_them(app_client: AppClient) -> None:
    body = b'{"events":[' + b"1," * 3_000_000 + b"1]}"
    response = post_raw(app_client, gzip.compress(body), **{"content-encoding": "gzip"})
    assert response.status_code == 400
    assert response.json()["message"] == "events: at most 2000 events per request"


class _CorruptRegion:
    """A GeoIP reader (a boundary we do not own) whose search tree is corrupt for one address:
    `get` raises as maxminddb's reader does on a damaged file."""

    def __init__(self, bad_address: str) -> None:
        self.bad_address = bad_address

    def get(self, address: object) -> None:
        if str(address) == self.bad_address:
            raise maxminddb.InvalidDatabaseError("The MaxMind DB file's search tree is corrupt")

    def close(self) -> None:
        pass


def test_an_unexpected_failure_on_one_row_is_internal_for_that_row_only(app_client: AppClient) -> None:
    app_client.http.app.state.gateway.geo._reader = _CorruptRegion("8.8.8.8")
    events = [track("good", insert_id="g1", __ip="9.9.9.9"), track("odd", insert_id="bad", __ip="8.8.8.8"),
              track("good", insert_id="g2")]
    response = post_batch(app_client, events)
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 2
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [(1, "internal")]
    assert stored_insert_ids(app_client) == ["g1", "g2"]

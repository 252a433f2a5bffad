"""`/track` and `/track/batch` through the app: per-row outcomes, limits, auth, storage."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from typing import Any

import msgspec

from tests.app.conftest import AppClient
from tests.helpers import AUTH, CLIENT_ID, iso, now_utc, track


def post_batch(app: AppClient, events: list[dict[str, Any]], headers: dict[str, str] | None = None) -> Any:
    return app.http.post("/track/batch", content=msgspec.json.encode({"events": events}), headers=headers or AUTH)


def test_bad_rows_are_rejected_at_their_exact_indices(app_client: AppClient) -> None:
    bad = {0: track(""), 49: track("x" * 81), 50: {"type": "nope"}, 999: track(__ip="1.2.3"),
           1999: {"type": "alias", "payload": {}}}
    events = [bad.get(i, track(f"e{i}", insert_id="auto")) for i in range(2000)]
    response = post_batch(app_client, events)
    assert response.status_code == 202
    body = response.json()
    assert [r["index"] for r in body["rejected"]] == [0, 49, 50, 999, 1999]
    assert {r["reason"] for r in body["rejected"]} == {"validation"}
    assert body["rejected"][0]["error"] == "payload.name: must not be empty"
    assert body["accepted"] == 1995 and body["duplicates"] == 0
    assert app_client.count() == 1995
    stored_names = {row[0] for row in app_client.rows("SELECT name FROM events WHERE name <> 'session_start'")}
    assert stored_names == {f"e{i}" for i in range(2000) if i not in bad}


def test_envelope_problems_are_400(app_client: AppClient) -> None:
    cases = {
        b"not json": "body: not valid JSON",
        b"[]": "body: expected `object`, got `array`",
        b"{}": "body: object missing required field `events`",
        b'{"events": {}}': "events: expected `array`, got `object`",
        b'{"events": []}': "events: must hold at least one event",
        msgspec.json.encode({"events": [track()] * 2001}): "events: at most 2000 events per request, got 2001",
    }
    for body, message in cases.items():
        response = app_client.http.post("/track/batch", content=body, headers=AUTH)
        assert response.status_code == 400, body[:40]
        assert response.json() == {"status": 400, "error": "Bad Request", "message": response.json()["message"]}
        assert message in response.json()["message"]
    assert app_client.count() == 0


def test_credentials(app_client: AppClient) -> None:
    wrong = [
        ({}, "missing openpanel-client-id header"),
        ({"openpanel-client-id": "00000000-0000-0000-0000-000000000000", "openpanel-client-secret": "x"},
         "unknown openpanel-client-id"),
        ({"openpanel-client-id": CLIENT_ID}, "missing openpanel-client-secret header (and no Origin header to check instead)"),
        ({"openpanel-client-id": CLIENT_ID, "openpanel-client-secret": "guess"}, "wrong openpanel-client-secret for this client id"),
    ]
    for headers, message in wrong:
        for path, body in (("/track", track()), ("/track/batch", {"events": [track()]})):
            response = app_client.http.post(path, content=msgspec.json.encode(body), headers=headers)
            assert response.status_code == 401
            assert response.json() == {"status": 401, "error": "Unauthorized", "message": message}
    assert app_client.count() == 0


def test_same_batch_twice_is_all_duplicates(app_client: AppClient) -> None:
    events = [track(f"e{i}", insert_id=f"dup-{i}") for i in range(500)]
    first = post_batch(app_client, events).json()
    second = post_batch(app_client, events).json()
    assert first == {"accepted": 500, "duplicates": 0, "rejected": []}
    assert second == {"accepted": 0, "duplicates": 500, "rejected": []}
    assert app_client.count() == 500
    assert app_client.rows("SELECT count(DISTINCT id) FROM events WHERE name <> 'session_start'")[0][0] == 500


def test_duplicates_inside_one_batch_count_once(app_client: AppClient) -> None:
    events = [track("a", insert_id="same"), track("b", insert_id="same"), track("c")]
    assert post_batch(app_client, events).json() == {"accepted": 2, "duplicates": 1, "rejected": []}
    assert sorted(r[0] for r in app_client.rows("SELECT name FROM events")) == ["a", "c", "session_start"]


def test_single_track_answers_ids_and_duplicate_keeps_them(app_client: AppClient) -> None:
    event = track("opened", insert_id="one", __timestamp=iso(now_utc() - dt.timedelta(hours=3)))
    first = app_client.http.post("/track", json=event, headers=AUTH)
    assert first.status_code == 200
    ids = first.json()
    assert len(ids["deviceId"]) == 32 and len(ids["sessionId"]) == 22
    again = app_client.http.post("/track", json=event, headers={**AUTH, "user-agent": "another/1.0"})
    assert again.status_code == 200
    assert again.json() == ids  # the ids it was stored under, not ones derived now
    stored = app_client.rows("SELECT device_id, session_id, profile_id FROM events WHERE name = 'opened'")
    assert stored == [(ids["deviceId"], ids["sessionId"], ids["deviceId"])]


def test_single_track_validation_error_is_400(app_client: AppClient) -> None:
    response = app_client.http.post("/track", json=track("x" * 81), headers=AUTH)
    assert response.status_code == 400
    assert response.json()["message"] == "payload.name: must be at most 80 characters, got 81"
    old = track("old", __timestamp=iso(now_utc() - dt.timedelta(days=6)))
    response = app_client.http.post("/track", json=old, headers=AUTH)
    assert response.status_code == 400
    assert "older than 5 days" in response.json()["message"]
    alias = app_client.http.post("/track", json={"type": "alias", "payload": {}}, headers=AUTH)
    assert alias.status_code == 400 and alias.json()["message"] == "type: alias is not supported"
    assert app_client.count() == 0


def test_increment_of_an_unknown_profile_is_a_validation_error(app_client: AppClient) -> None:
    increment = {"type": "increment", "payload": {"profileId": "nobody", "property": "visits"}}
    single = app_client.http.post("/track", json=increment, headers=AUTH)
    assert single.status_code == 400
    assert single.json()["message"] == "payload.profileId: no profile 'nobody'; identify it first"
    body = post_batch(app_client, [increment, track("ok")]).json()
    assert body == {"accepted": 1, "duplicates": 0, "rejected": [
        {"index": 0, "reason": "validation", "error": "payload.profileId: no profile 'nobody'; identify it first"}]}
    assert app_client.rows("SELECT count(*) FROM profiles WHERE id = 'nobody'") == [(0,)]


def test_identify_upserts_the_profile(app_client: AppClient) -> None:
    first = {"type": "identify", "payload": {"profileId": "u1", "firstName": "Ada", "email": "ada@example.com",
                                             "properties": {"plan": "free", "tier": {"level": 1}}}}
    second = {"type": "identify", "payload": {"profileId": "u1", "lastName": "Lovelace", "firstName": "",
                                              "properties": {"plan": "pro"}}}
    assert post_batch(app_client, [first]).json()["accepted"] == 1
    created = app_client.rows("SELECT created_at FROM profiles")[0][0]
    assert app_client.http.post("/track", json=second, headers=AUTH).status_code == 200
    rows = app_client.rows("SELECT id, first_name, last_name, email, properties, created_at FROM profiles")
    assert len(rows) == 1
    profile_id, first_name, last_name, email, properties, created_at = rows[0]
    assert (profile_id, first_name, last_name, email) == ("u1", "Ada", "Lovelace", "ada@example.com")
    # The client's properties, plus where and on what the profile was last seen (as OpenPanel does).
    assert json.loads(properties) == {"plan": "pro", "tier.level": "1", "os": "iOS", "os_version": "17.5",
                                      "browser": "Mobile Safari", "browser_version": "17.5", "device": "mobile",
                                      "brand": "Apple", "model": "iPhone"}
    assert created_at == created
    assert app_client.count() == 0  # identify stores a profile, not an event


def test_stored_row_columns(app_client: AppClient) -> None:
    event = {"type": "track", "payload": {"name": "purchase", "profileId": 42, "groups": ["shop-1"],
             "properties": {"cart": {"items": 2}, "__path": "/checkout", "__referrer": "https://ex.com/",
                            "__timestamp": iso(now_utc() - dt.timedelta(minutes=5)), "empty": ""}}}
    headers = {**AUTH, "openpanel-sdk-name": "web", "openpanel-sdk-version": "1.2.3"}
    assert app_client.http.post("/track", json=event, headers=headers).status_code == 200
    row = app_client.rows(
        "SELECT name, profile_id, project_id, groups, path, referrer, properties, sdk_name, sdk_version FROM events "
        "WHERE name = 'purchase'")
    assert row == [("purchase", "42", "demo", ["shop-1"], "/checkout", "https://ex.com",
                    '{"cart.items":"2"}', "web", "1.2.3")]


def test_compressed_bodies_and_limits(app_client: AppClient) -> None:
    body = msgspec.json.encode({"events": [track("gz")]})
    gz = app_client.http.post("/track/batch", content=gzip.compress(body),
                              headers={**AUTH, "content-encoding": "gzip"})
    assert gz.status_code == 202 and gz.json()["accepted"] == 1
    bomb = gzip.compress(b" " * (10 * 1024 * 1024 + 1))
    too_big = app_client.http.post("/track/batch", content=bomb, headers={**AUTH, "content-encoding": "gzip"})
    assert too_big.status_code == 413
    assert too_big.json()["message"] == "body: larger than 10485760 bytes after decompression"
    brotli = app_client.http.post("/track/batch", content=body, headers={**AUTH, "content-encoding": "br"})
    assert brotli.status_code == 415
    corrupt = app_client.http.post("/track/batch", content=b"\x1f\x8bnot", headers={**AUTH, "content-encoding": "gzip"})
    assert corrupt.status_code == 400
    assert app_client.count() == 1


def test_device_id_endpoint(app_client: AppClient) -> None:
    response = app_client.http.get("/track/device-id", headers=AUTH)
    assert response.status_code == 200
    tracked = app_client.http.post("/track", json=track(), headers=AUTH).json()
    assert response.json()["deviceId"] == tracked["deviceId"]
    assert response.json()["sessionId"] == tracked["sessionId"] != ""
    # A server agent has a device id but never a session.
    server = app_client.http.get("/track/device-id", headers={**AUTH, "user-agent": "curl/8.5.0"}).json()
    assert server["sessionId"] == "" and len(server["deviceId"]) == 32
    assert app_client.http.get("/track/device-id").status_code == 401


def test_a_devices_context_is_flattened_once_across_its_batches(app_client: AppClient) -> None:
    # The gateway keeps flattened property objects from request to request (appliance.properties);
    # what is stored is what a fresh walk gives, in the second batch as in the first.
    context = {"app": {"name": "till", "build": 41}, "device": {"model": "kiosk-7", "dark": False}}
    for batch in range(2):
        response = post_batch(app_client, [track("scan", insert_id=f"memo-{batch}-{n}", context=context, n=n)
                                           for n in range(3)])
        assert response.json()["accepted"] == 3
    memo = app_client.http.app.state.gateway.flatten_memo
    assert ("context", json.dumps(context, separators=(",", ":")).encode()) in memo.values
    stored = app_client.rows("SELECT properties FROM events WHERE name = 'scan' ORDER BY id")
    expected = {"context.app.name": "till", "context.app.build": "41", "context.device.model": "kiosk-7",
                "context.device.dark": "false"}
    assert len(stored) == 6
    for (properties,) in stored:
        assert {key: value for key, value in json.loads(properties).items() if key.startswith("context.")} == expected

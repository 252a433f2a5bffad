"""Browser pages as clients (docs/contract.md §3.1): CORS on the ingest routes only, origin-checked clients,
revenue only with the secret, and the lenient inputs OpenPanel accepts."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from appliance.app import create_app
from appliance.settings import load_settings
from tests.app.conftest import AppClient
from tests.helpers import AUTH, CLIENT_ID, CLIENT_SECRET, PHONE_UA, track, write_config

KIOSK = "https://kiosk.shop.example"
ALLOWED = f'allowed_origins = ["{KIOSK}", "*.intranet.example"]'
PAGE = {"openpanel-client-id": CLIENT_ID, "origin": KIOSK}
INGEST_ROUTES = (("POST", "/track"), ("POST", "/track/batch"), ("GET", "/track/device-id"))


def _client(tmp_path: Path, extra: str = ALLOWED) -> Iterator[AppClient]:
    with TestClient(app=create_app(load_settings(write_config(tmp_path, extra=extra)))) as client:
        client.headers["user-agent"] = PHONE_UA
        yield AppClient(client)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[AppClient]:
    yield from _client(tmp_path)


def batch(app: AppClient, events: list[dict[str, Any]], headers: dict[str, str]) -> Any:
    return app.http.post("/track/batch", content=msgspec.json.encode({"events": events}), headers=headers)


def assert_cors(response: Any, origin: str) -> None:
    assert response.headers["access-control-allow-origin"] == origin
    assert "Origin" in response.headers["vary"]
    assert "access-control-allow-credentials" not in response.headers


# --- CORS -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), INGEST_ROUTES)
def test_preflight_on_ingest_routes(app: AppClient, method: str, path: str) -> None:
    response = app.http.options(path, headers={
        "origin": KIOSK, "access-control-request-method": method,
        "access-control-request-headers": "content-type,openpanel-client-id,openpanel-sdk-name,openpanel-sdk-version",
    })
    assert response.status_code == 204
    assert_cors(response, KIOSK)
    allowed_headers = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "openpanel-client-id", "openpanel-client-secret", "openpanel-sdk-name",
            "openpanel-sdk-version"} <= allowed_headers
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert int(response.headers["access-control-max-age"]) >= 86400


def test_preflight_for_an_origin_not_listed_still_passes(app: AppClient) -> None:
    # CORS lets the page read its answer; authentication (the 401 below) is what refuses it.
    response = app.http.options("/track", headers={"origin": "https://elsewhere.example",
                                                    "access-control-request-method": "POST"})
    assert response.status_code == 204
    assert_cors(response, "https://elsewhere.example")


def test_preflight_refuses_unknown_headers_and_methods(app: AppClient) -> None:
    headers = {"origin": KIOSK, "access-control-request-method": "POST", "access-control-request-headers": "x-debug"}
    response = app.http.options("/track", headers=headers)
    assert response.status_code == 400
    assert response.json()["message"] == "CORS preflight: header(s) x-debug not allowed here"
    assert "access-control-allow-origin" not in response.headers
    response = app.http.options("/track", headers={"origin": KIOSK, "access-control-request-method": "DELETE"})
    assert response.status_code == 400 and "method DELETE" in response.json()["message"]


@pytest.mark.parametrize("path", ["/admin/status", "/admin/sync", "/schema", "/healthz", "/readyz"])
def test_no_cors_outside_the_ingest_routes(app: AppClient, path: str) -> None:
    preflight = app.http.options(path, headers={"origin": KIOSK, "access-control-request-method": "GET"})
    assert not any(h.startswith("access-control-") for h in preflight.headers), dict(preflight.headers)
    answer = app.http.get(path, headers={"origin": KIOSK})
    assert not any(h.startswith("access-control-") for h in answer.headers), dict(answer.headers)


def test_every_answer_to_a_page_carries_cors_headers(app: AppClient) -> None:
    answers = {
        "ok": app.http.post("/track", json=track("tap"), headers=PAGE),
        "batch": batch(app, [track("tap")], PAGE),
        "device-id": app.http.get("/track/device-id", headers=PAGE),
        "bad row": app.http.post("/track", json=track(""), headers=PAGE),
        "bad envelope": app.http.post("/track/batch", content=b"{}", headers=PAGE),
        "too large": app.http.post("/track", content=b"x", headers={**PAGE, "content-length": str(11 * 2**20)}),
        "bad encoding": app.http.post("/track", content=b"x", headers={**PAGE, "content-encoding": "br"}),
        "not allowed": app.http.post("/track", json=track("tap"), headers={**PAGE, "origin": "https://elsewhere.example"}),
        "wrong secret": app.http.post("/track", json=track("tap"), headers={**PAGE, "openpanel-client-secret": "guess"}),
    }
    statuses = {name: response.status_code for name, response in answers.items()}
    assert statuses == {"ok": 200, "batch": 202, "device-id": 200, "bad row": 400, "bad envelope": 400,
                        "too large": 413, "bad encoding": 415, "not allowed": 401, "wrong secret": 401}
    for name, response in answers.items():
        expected = "https://elsewhere.example" if name == "not allowed" else KIOSK
        assert response.headers.get("access-control-allow-origin") == expected, name
        assert "Origin" in response.headers["vary"], name


def test_a_full_disk_answer_reaches_the_page_with_its_retry_after(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, extra=ALLOWED, storage={"max_disk_bytes": 1}))
    with TestClient(app=create_app(settings)) as client:
        response = client.post("/track", json=track(), headers={**PAGE, "user-agent": PHONE_UA})
        assert response.status_code == 503 and response.headers["retry-after"] == "60"
        assert_cors(response, KIOSK)
        assert response.headers["access-control-expose-headers"] == "Retry-After"


def test_device_answers_say_vary_origin_without_allowing_one(app: AppClient) -> None:
    response = app.http.post("/track", json=track("tap"), headers=AUTH)
    assert response.status_code == 200
    assert response.headers["vary"] == "Origin"
    assert "access-control-allow-origin" not in response.headers


# --- origin-checked clients --------------------------------------------------------------------


def test_page_on_an_allowed_origin_sends_without_secret(app: AppClient) -> None:
    for origin in (KIOSK, "https://tablet.intranet.example", "http://pos.7.intranet.example"):
        response = app.http.post("/track", json=track("tap", insert_id="auto"), headers={**PAGE, "origin": origin})
        assert response.status_code == 200, response.text
    assert batch(app, [track("a"), track("b")], PAGE).json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    assert app.count() == 5


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"openpanel-client-id": CLIENT_ID},
         "missing openpanel-client-secret header (and no Origin header to check instead)"),
        ({**PAGE, "origin": "https://elsewhere.example"},
         "missing openpanel-client-secret header, and origin https://elsewhere.example is not in this project's "
         "allowed_origins"),
        ({**PAGE, "origin": "https://intranet.example"},  # the wildcard's apex is not one of its subdomains
         "missing openpanel-client-secret header, and origin https://intranet.example is not in this project's "
         "allowed_origins"),
        ({**PAGE, "origin": "null"},
         "missing openpanel-client-secret header, and origin null is not in this project's allowed_origins"),
        ({**PAGE, "openpanel-client-secret": "guess"}, "wrong openpanel-client-secret for this client id"),
        ({**PAGE, "openpanel-client-id": "00000000-0000-0000-0000-000000000000"}, "unknown openpanel-client-id"),
    ],
)
def test_refused_pages_get_401_naming_why(app: AppClient, headers: dict[str, str], message: str) -> None:
    for method, path in INGEST_ROUTES:
        body = {"events": [track()]} if path == "/track/batch" else track()
        response = app.http.request(method, path, content=msgspec.json.encode(body) if method == "POST" else None,
                                    headers=headers)
        assert response.status_code == 401, path
        assert response.json() == {"status": 401, "error": "Unauthorized", "message": message}
    assert app.count() == 0 and app.count("profiles") == 0


def test_a_project_without_allowed_origins_refuses_every_page(tmp_path: Path) -> None:
    for app in _client(tmp_path, extra=""):
        response = app.http.post("/track", json=track(), headers=PAGE)
        assert response.status_code == 401
        assert "origin https://kiosk.shop.example is not in this project's allowed_origins" in response.json()["message"]
        assert app.count() == 0


def test_star_allows_any_page_but_not_a_missing_origin(tmp_path: Path) -> None:
    for app in _client(tmp_path, extra='allowed_origins = ["*"]'):
        assert app.http.post("/track", json=track(), headers={**PAGE, "origin": "https://any.example"}).status_code == 200
        assert app.http.post("/track", json=track(), headers={**PAGE, "origin": "null"}).status_code == 200
        no_origin = app.http.post("/track", json=track(), headers={"openpanel-client-id": CLIENT_ID})
        assert no_origin.status_code == 401
        assert no_origin.json()["message"] == "missing openpanel-client-secret header (and no Origin header to check instead)"
        assert app.count() == 2


def test_revenue_from_a_page_is_refused_for_that_row(app: AppClient) -> None:
    events = [track("tap"), track("revenue", __revenue=1299), track("checkout", __revenue=5), track("done")]
    body = batch(app, events, PAGE).json()
    assert body["accepted"] == 2
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [(1, "validation"), (2, "validation")]
    assert all("revenue needs the client secret" in r["error"] for r in body["rejected"])
    single = app.http.post("/track", json=track("revenue", __revenue=1299), headers=PAGE)
    assert single.status_code == 400
    assert single.json()["message"].startswith("payload.properties.__revenue: revenue needs the client secret")
    assert {r[0] for r in app.rows("SELECT name FROM events WHERE name NOT LIKE 'session_%'")} == {"tap", "done"}
    # The same revenue with the secret is stored.
    assert batch(app, [track("revenue", __revenue=1299)], {**PAGE, **AUTH}).json()["accepted"] == 1
    assert app.rows("SELECT revenue FROM events WHERE name = 'revenue'") == [(1299,)]


# --- lenient inputs ------------------------------------------------------------------------------


def test_groups_null_is_treated_as_absent(app: AppClient) -> None:
    item = {"type": "track", "payload": {"name": "tap", "groups": None, "properties": {}}}
    assert app.http.post("/track", json=item, headers=AUTH).status_code == 200
    assert batch(app, [item], AUTH).json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert app.rows("SELECT DISTINCT groups FROM events WHERE name = 'tap'") == [([],)]


def test_revenue_outside_revenue_events_is_ignored(app: AppClient) -> None:
    response = app.http.post("/track", json=track("checkout", __revenue=4999, step=2), headers=AUTH)
    assert response.status_code == 200
    assert batch(app, [track("paid", __revenue="oops")], AUTH).json()["accepted"] == 1
    stored = {r[0]: (r[1], json.loads(r[2])) for r in app.rows(
        "SELECT name, revenue, properties FROM events WHERE name NOT LIKE 'session_%'")}
    assert stored == {"checkout": (0, {"step": "2"}), "paid": (0, {})}


def test_credentials_in_the_body(app: AppClient) -> None:
    in_body = {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}
    single = app.http.post("/track", content=msgspec.json.encode({**track("single"), **in_body}))
    assert single.status_code == 200, single.text
    many = app.http.post("/track/batch", content=msgspec.json.encode({**in_body, "events": [track("a"), track("b")]}))
    assert many.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    # Compressed bodies too: the credentials are read after decompression.
    packed = gzip.compress(msgspec.json.encode({**track("packed"), **in_body}))
    assert app.http.post("/track", content=packed, headers={"content-encoding": "gzip"}).status_code == 200
    # A body id without a secret is a page like any other: its origin decides.
    page_body = msgspec.json.encode({**track("page"), "clientId": CLIENT_ID})
    assert app.http.post("/track", content=page_body, headers={"origin": KIOSK}).status_code == 200
    assert app.count() == 5


def test_body_credentials_are_checked_like_headers(app: AppClient) -> None:
    cases = [
        ({"clientId": CLIENT_ID, "clientSecret": "guess"}, {}, "wrong openpanel-client-secret for this client id"),
        ({"clientId": CLIENT_ID}, {}, "missing openpanel-client-secret header (and no Origin header to check instead)"),
        ({"clientId": 42, "clientSecret": CLIENT_SECRET}, {}, "missing openpanel-client-id header"),
        # The header wins over the body.
        ({"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET},
         {"openpanel-client-id": "00000000-0000-0000-0000-000000000000"}, "unknown openpanel-client-id"),
    ]
    for in_body, headers, message in cases:
        response = app.http.post("/track", content=msgspec.json.encode({**track(), **in_body}), headers=headers)
        assert response.status_code == 401
        assert response.json()["message"] == message
    assert app.http.post("/track", content=b"not json").json()["message"] == "missing openpanel-client-id header"
    assert app.count() == 0

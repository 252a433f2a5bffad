"""Stored enrichment columns of real rows (docs/contract.md §6), through the app with a real mmdb and DuckDB."""

from __future__ import annotations

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
from tests.helpers import AUTH, PHONE_UA, track, write_config

GEO_TEST_DB = Path(__file__).resolve().parents[1] / "data" / "geoip" / "GeoIP2-City-Test.mmdb"
COLUMNS = ("name, device_id, session_id, country, region, city, os, os_version, browser, device, brand, model, "
           "path, origin, referrer, referrer_name, referrer_type, properties")


def _client(tmp_path: Path, extra: str = "") -> Iterator[AppClient]:
    config = write_config(tmp_path, extra=extra, geo={"database": str(GEO_TEST_DB)},
                          site={"country": "DE", "region": "Hamburg", "city": "Hamburg"})
    with TestClient(app=create_app(load_settings(config))) as client:
        client.headers["user-agent"] = PHONE_UA
        yield AppClient(client)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[AppClient]:
    yield from _client(tmp_path)


def rows(app: AppClient) -> dict[str, dict[str, Any]]:
    names = [c.strip() for c in COLUMNS.split(",")]
    return {r[0]: dict(zip(names, r, strict=True))
            for r in app.rows(f"SELECT {COLUMNS} FROM events WHERE name NOT LIKE 'session_%'")}


def post(app: AppClient, events: list[dict[str, Any]], **headers: str) -> dict[str, Any]:
    response = app.http.post("/track/batch", content=msgspec.json.encode({"events": events}), headers={**AUTH, **headers})
    assert response.status_code == 202
    return dict(response.json())


def test_each_address_in_a_batch_gets_its_own_geo(app: AppClient) -> None:
    post(app, [track("london", __ip="81.2.69.142"), track("milton", __ip="216.160.83.56"),
               track("tokyo", __ip="2001:218::"), track("lan", __ip="192.168.1.50")])
    stored = rows(app)
    assert (stored["london"]["country"], stored["london"]["city"]) == ("GB", "London")
    assert (stored["milton"]["country"], stored["milton"]["region"], stored["milton"]["city"]) == ("US", "Washington", "Milton")
    assert stored["tokyo"]["country"] == "JP"
    assert (stored["lan"]["country"], stored["lan"]["city"]) == ("DE", "Hamburg")
    # The address is part of the device id: four addresses, four devices.
    assert len({row["device_id"] for row in stored.values()}) == 4


def test_invalid_ip_override_is_a_validation_error(app: AppClient) -> None:
    body = post(app, [track("bad", __ip="300.1.1.1"), track("good")])
    assert body["rejected"] == [{"index": 0, "reason": "validation",
                                 "error": "payload.properties.__ip: '300.1.1.1' is not an IP address"}]


def test_phone_columns_path_query_hash_and_referrer(app: AppClient) -> None:
    post(app, [track("view", __path="https://shop.example.com/catalog?cat=shoes&utm_source=google#top",
                     __referrer="https://www.google.de/", __title="Shoes")])
    row = rows(app)["view"]
    assert (row["os"], row["browser"], row["device"], row["brand"], row["model"]) == (
        "iOS", "Mobile Safari", "mobile", "Apple", "iPhone")
    assert (row["origin"], row["path"]) == ("https://shop.example.com", "/catalog")
    assert (row["referrer"], row["referrer_name"], row["referrer_type"]) == ("https://www.google.de", "Google", "search")
    assert json.loads(row["properties"]) == {"__query.cat": "shoes", "__query.utm_source": "google",
                                             "__hash": "#top", "__title": "Shoes"}
    assert len(row["session_id"]) == 22


def test_internal_referrer_is_dropped_and_screen_names_kept(app: AppClient) -> None:
    post(app, [track("nav", __path="https://shop.example.com/b", __referrer="https://shop.example.com/a"),
               track("screen", __path="CartScreen")])
    stored = rows(app)
    assert (stored["nav"]["referrer"], stored["nav"]["referrer_name"], stored["nav"]["referrer_type"]) == ("", "", "")
    assert (stored["screen"]["path"], stored["screen"]["origin"]) == ("CartScreen", "")


def test_agent_overrides_apply_to_devices(app: AppClient) -> None:
    post(app, [track("kiosk", __os="KioskOS", __osVersion="7.1", __browser="ShopShell", __device="tablet",
                     __brand="Elo", __model="I-Series 4")])
    row = app.rows("SELECT os, os_version, browser, device, brand, model FROM events WHERE name = 'kiosk'")[0]
    assert row == ("KioskOS", "7.1", "ShopShell", "tablet", "Elo", "I-Series 4")


def test_server_agents_get_no_session_and_cannot_override(app: AppClient) -> None:
    post(app, [track("job", __device="mobile")], **{"user-agent": "python-requests/2.31.0"})
    row = rows(app)["job"]
    # OpenPanel stores nothing of a server's agent but its class (parser-user-agent.ts).
    assert (row["session_id"], row["device"], row["os"], row["browser"]) == ("", "server", "", "")
    single = app.http.post("/track", json=track("job2"), headers={**AUTH, "user-agent": "okhttp/4.12.0"})
    assert single.status_code == 200 and single.json()["sessionId"] == ""


def test_firmware_is_an_embedded_device_with_a_session(app: AppClient) -> None:
    post(app, [track("reading")], **{"user-agent": "ESP32HTTPClient"})
    row = rows(app)["reading"]
    assert row["device"] == "embedded" and len(row["session_id"]) == 22


def test_bots_are_acknowledged_counted_and_not_stored(tmp_path: Path) -> None:
    # Bots are looked for among browser pages (origin-checked clients), as OpenPanel does.
    page = {"openpanel-client-id": AUTH["openpanel-client-id"], "origin": "https://kiosk.shop.example"}
    for app in _client(tmp_path, extra='allowed_origins = ["https://kiosk.shop.example"]'):
        googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
        response = app.http.post("/track/batch", content=msgspec.json.encode({"events": [track("a"), track(""), track("b")]}),
                                 headers={**page, "user-agent": googlebot})
        body = response.json()
        assert body["accepted"] == 0 and body["duplicates"] == 0
        assert [(r["index"], r["reason"]) for r in body["rejected"]] == [(0, "bot"), (1, "validation"), (2, "bot")]
        headless = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 "
                    "Safari/537.36")
        single = app.http.post("/track", json=track("c"), headers={**page, "user-agent": headless})
        assert single.status_code == 202
        assert single.json() == {"bot": {"name": "Chrome Headless", "userAgent": headless}}
        assert app.count() == 0


@pytest.mark.parametrize(
    ("user_agent", "device", "browser", "has_session"),
    [
        # OpenPanel stores nothing of a server's agent but `device = "server"`.
        ("Python-urllib/3.11", "server", "", False),
        ("Java/1.8.0", "server", "", False),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
         "desktop", "Chrome Headless", True),
    ],
)
def test_secret_clients_are_never_bots(app: AppClient, user_agent: str, device: str, browser: str,
                                        has_session: bool) -> None:
    # A kiosk renderer or a server-side SDK that proved the secret is first-party traffic.
    body = post(app, [track("rendered")], **{"user-agent": user_agent})
    assert body == {"accepted": 1, "duplicates": 0, "rejected": []}
    row = rows(app)["rendered"]
    assert (row["device"], row["browser"]) == (device, browser)
    assert (len(row["session_id"]) == 22) is has_session
    single = app.http.post("/track", json=track("single"), headers={**AUTH, "user-agent": user_agent})
    assert single.status_code == 200 and set(single.json()) == {"deviceId", "sessionId"}
    assert app.count() == 2


def test_unknown_agents_as_devices(tmp_path: Path) -> None:
    for app in _client(tmp_path, extra='unknown_agents = "device"'):
        post(app, [track("tick")], **{"user-agent": "PlantController/2.4"})
        row = rows(app)["tick"]
        assert row["device"] == "embedded" and len(row["session_id"]) == 22


def test_revenue_and_sdk_columns(app: AppClient) -> None:
    post(app, [track("revenue", __revenue=1299, currency="EUR"), track("other")],
         **{"openpanel-sdk-name": "node", "openpanel-sdk-version": "1.3.1"})
    stored = dict(app.rows("SELECT name, revenue FROM events WHERE name NOT LIKE 'session_%'"))
    assert stored == {"revenue": 1299, "other": 0}
    assert app.rows("SELECT DISTINCT sdk_name, sdk_version FROM events") == [("node", "1.3.1")]  # session_start too
    assert json.loads(app.rows("SELECT properties FROM events WHERE name = 'revenue'")[0][0]) == {"currency": "EUR"}

"""The official OpenPanel web SDK (`@openpanel/web` from npm, its `op1.js` script tag) in Debian's
Chromium (headless, CORS enforced, driven by playwright-core), on a site page served from
another origin than the gateway's, with the client id only — no secret (docs/contract.md §3.1).

Needs `/usr/bin/chromium` (`apt-get install -y chromium`) and `npm ci --prefix tests/e2e/sdk`;
the test fails, naming what is missing, when either is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import GatewayServer
from tests.helpers import CLIENT_ID, query, write_config

SDK_FOLDER = Path(__file__).resolve().parent / "sdk"
OP1_JS = SDK_FOLDER / "node_modules" / "@openpanel" / "web" / "dist" / "src" / "tracker.global.js"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium package

# OpenPanel's script-tag snippet (its docs, "Script Tag"), with apiUrl pointing at the gateway.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Kiosk start</title>
<script>
  window.op=window.op||function(){var n=[];return new Proxy(function(){arguments.length&&n.push([].slice.call(arguments))},{get:function(t,r){return"q"===r?n:function(){n.push([r].concat([].slice.call(arguments)))}} ,has:function(t,r){return"q"===r}}) }();
  window.op('init', {
    apiUrl: '%(gateway)s',
    clientId: '%(client_id)s',
    trackScreenViews: true,
  });
</script>
<script src="/op1.js" defer async></script>
</head><body><h1>Shop 12 kiosk</h1></body></html>
"""


class SitePage:
    """A web app's page on its own origin (127.0.0.1 on a free port): the snippet and op1.js."""

    def __init__(self) -> None:
        self.gateway_url = ""
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/op1.js":
                    body, kind = OP1_JS.read_bytes(), "text/javascript"
                else:  # every path is the app (client-side routing)
                    body = (PAGE % {"gateway": page.gateway_url, "client_id": CLIENT_ID}).encode()
                    kind = "text/html; charset=utf-8"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def pages() -> Iterator[tuple[SitePage, SitePage]]:
    """Two site pages on two origins: the project allows the first only."""
    allowed, elsewhere = SitePage(), SitePage()
    yield allowed, elsewhere
    allowed.close()
    elsewhere.close()


def browse(page: SitePage, scenario: str, profile_dir: Path) -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "Node.js is needed for this test"
    assert CHROMIUM.exists(), f"Debian's Chromium is needed for this test: apt-get install -y chromium ({CHROMIUM})"
    assert OP1_JS.exists() and (SDK_FOLDER / "node_modules" / "playwright-core").is_dir(), \
        "run: npm ci --prefix tests/e2e/sdk"
    profile_dir.mkdir()
    run = subprocess.run(
        [node, "browse.mjs"], cwd=SDK_FOLDER, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PAGE_URL": page.origin, "SCENARIO": scenario, "CHROMIUM": str(CHROMIUM),
             "PROFILE_DIR": str(profile_dir)},
    )
    assert run.returncode == 0, run.stderr
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def start_gateway(folder: Path, allowed: SitePage) -> GatewayServer:
    write_config(folder, extra=f'allowed_origins = ["{allowed.origin}", "https://*.shop.example"]')
    return GatewayServer(folder).start()


def test_web_sdk_on_an_allowed_origin_lands(tmp_path: Path, pages: tuple[SitePage, SitePage]) -> None:
    allowed, _ = pages
    server = start_gateway(tmp_path, allowed)
    try:
        allowed.gateway_url = server.url
        seen = browse(allowed, "visit", tmp_path / "profile")
    finally:
        assert server.stop() == 0

    # The page's JavaScript read every answer: CORS let it, and each was a success.
    answers = seen["answers"]
    assert [a["item"]["type"] for a in answers] == [
        "track", "track", "track", "track", "identify", "increment", "decrement", "group", "assign_group", "track"]
    assert all(a.get("status") == 200 for a in answers), answers
    assert all(a["url"] == f"{server.url}/track" for a in answers)
    assert all(result and set(result) == {"deviceId", "sessionId"} for result in seen["results"].values()), seen
    assert "Chrome/" in seen["userAgent"] and "HeadlessChrome" not in seen["userAgent"]

    db = server.database
    columns = ("name", "path", "origin", "referrer", "referrer_name", "referrer_type", "properties", "session_id",
               "device_id", "profile_id", "groups", "browser", "browser_version", "os", "device", "sdk_name",
               "sdk_version")
    rows = [dict(zip(columns, r, strict=True)) for r in query(
        db, f"SELECT {', '.join(columns)} FROM events ORDER BY created_at, name")]
    names = [r["name"] for r in rows]
    assert names == ["session_start", "screen_view", "screen_view", "screen_view", "order_opened", "order_closed"]

    # One session, one session_start, one device: the browser's.
    assert len({r["session_id"] for r in rows}) == 1 and len(rows[0]["session_id"]) == 22
    assert len({r["device_id"] for r in rows}) == 1
    # The browser's user agent, parsed.
    major = seen["userAgent"].split("Chrome/")[1].split(".")[0]
    for row in rows:
        assert (row["browser"], row["os"], row["device"]) == ("Chrome", "Linux", "desktop")
        assert row["browser_version"].split(".")[0] == major
        assert (row["sdk_name"], row["sdk_version"]) == ("web", "1.4.1")
        # The search engine the visit came from (document.referrer), on every event of the visit.
        assert (row["referrer"], row["referrer_name"], row["referrer_type"]) == (
            "https://www.google.com", "Google", "search")
        assert row["origin"] == allowed.origin

    views = [r for r in rows if r["name"] == "screen_view"]
    assert [v["path"] for v in views] == ["/app/start", "/app/orders", "/app/orders/7"]
    view_properties = [json.loads(v["properties"]) for v in views]
    assert view_properties[0] == {"__title": "Kiosk start", "__query.lang": "de", "__query.kiosk": "3"}
    assert view_properties[1] == {"__title": "Orders", "__query.status": "open"}
    assert view_properties[2] == {"__title": "Order 7"}

    by_name = {r["name"]: r for r in rows}
    opened, closed = by_name["order_opened"], by_name["order_closed"]
    assert opened["path"] == "/app/orders/7"  # the SDK sends the last screen's URL with track()
    assert json.loads(opened["properties"]) == {"order": "7", "total.items": "2"}
    assert opened["profile_id"] == opened["device_id"] and opened["groups"] == []  # before identify/setGroup
    assert (closed["profile_id"], closed["groups"]) == ("clerk-17", ["shop-12"])

    sessions = query(db, "SELECT id, event_count, screen_view_count, entry_path, exit_path, referrer_name, "
                         "browser, profile_id FROM sessions")
    # OpenPanel's event_count leaves out screen views (session-buffer.ts): 2 tracked events, 3 views.
    assert sessions == [(rows[0]["session_id"], 2, 3, "/app/start", "/app/orders/7", "Google", "Chrome", "clerk-17")]

    profile = query(db, "SELECT first_name, last_name, email, properties, groups FROM profiles WHERE id = 'clerk-17'")
    first, last, email, properties, groups = profile[0]
    assert (first, last, email, groups) == ("Grace", "Hopper", "grace@shop.example", ["shop-12"])
    properties = json.loads(properties)
    assert (properties["role"], properties["orders"]) == ("cashier", "2")
    assert (properties["browser"], properties["os"], properties["device"]) == ("Chrome", "Linux", "desktop")
    assert query(db, "SELECT id, type, name, properties FROM groups") == [
        ("shop-12", "shop", "Shop 12", '{"city":"Hamburg"}')]


def test_web_sdk_on_another_origin_gets_401_and_stores_nothing(
    tmp_path: Path, pages: tuple[SitePage, SitePage]
) -> None:
    allowed, elsewhere = pages
    server = start_gateway(tmp_path, allowed)
    try:
        elsewhere.gateway_url = server.url
        seen = browse(elsewhere, "refused", tmp_path / "profile")
    finally:
        assert server.stop() == 0

    # The SDK read a 401 for each call (not a CORS failure) and, as it does on 401, did not retry.
    answers = seen["answers"]
    assert [(a["item"]["type"], a["item"]["payload"]["name"]) for a in answers] == [
        ("track", "screen_view"), ("track", "order_opened")]
    assert [a.get("status") for a in answers] == [401, 401], answers
    assert seen["results"] == {"track": None}
    assert query(server.database, "SELECT count(*) FROM events") == [(0,)]
    assert query(server.database, "SELECT count(*) FROM sessions") == [(0,)]

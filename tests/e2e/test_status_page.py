"""`GET /admin` rendered by headless Chromium (Debian's `chromium`, driven by playwright-core from
`npm ci --prefix tests/e2e/sdk`): the page shows the gateway's own numbers, draws its charts and
loads nothing from anywhere else. The screenshot is kept in `test-artifacts/`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import msgspec

from appliance import __version__
from tests.e2e.conftest import REPO, GatewayServer
from tests.helpers import AUTH, PHONE_UA, track, write_config

SDK_FOLDER = Path(__file__).resolve().parent / "sdk"
ARTIFACTS = REPO / "test-artifacts"


def test_status_page_renders_in_chromium(tmp_path: Path) -> None:
    node, chromium = shutil.which("node"), shutil.which("chromium") or "/usr/bin/chromium"
    assert node and Path(chromium).exists(), "Node.js and Debian's chromium are needed for this test"
    assert (SDK_FOLDER / "node_modules" / "playwright-core").is_dir(), "run: npm ci --prefix tests/e2e/sdk"
    write_config(tmp_path, gateway={"id": "depot-7"})
    gateway = GatewayServer(tmp_path).start()
    try:
        # The first sample is taken just after start; once it is in, the backlog chart has a line.
        deadline = time.monotonic() + 10
        while "<polyline" not in httpx.get(f"{gateway.url}/admin").text:
            assert time.monotonic() < deadline, "no history sample after start"
            time.sleep(0.1)
        items = [track(f"e{i}", insert_id=f"page-{i}") for i in range(25)] + [{"type": "track", "payload": {}}]
        body = msgspec.json.encode({"events": items})
        answer = httpx.post(f"{gateway.url}/track/batch", content=body, headers={**AUTH, "user-agent": PHONE_UA})
        assert answer.json()["accepted"] == 25

        plain = httpx.get(f"{gateway.url}/admin")
        assert plain.status_code == 200 and plain.headers["content-type"].startswith("text/html")
        assert plain.headers["content-security-policy"].startswith("default-src 'none'")
        assert "http://" not in plain.text and "https://" not in plain.text  # no external asset at all

        ARTIFACTS.mkdir(exist_ok=True)
        screenshot = ARTIFACTS / "admin-status-page.png"
        screenshot.unlink(missing_ok=True)
        run = subprocess.run([node, "status_page.mjs"], cwd=SDK_FOLDER, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PAGE_URL": f"{gateway.url}/admin", "SCREENSHOT": str(screenshot),
                                  "CHROMIUM": chromium})
        assert run.returncode == 0, run.stderr
        page = json.loads(run.stdout.strip().splitlines()[-1])
    finally:
        assert gateway.stop() == 0
    assert page["status"] == 200 and page["title"] == "depot-7 · edge gateway"
    assert (page["gatewayId"], page["version"], page["state"]) == ("depot-7", __version__, "healthy")
    assert page["outcomes"] == {"accepted": 25, "duplicate": 0, "validation": 1, "internal": 0, "bot": 0}
    # 25 events and their session_start, the session row and the visit's anonymous profile:
    # stored, not yet forwarded
    assert page["backlog"] == {"events": 26, "sessions": 1, "profiles": 1, "groups": 0, "session_replay_chunks": 0}
    assert page["quarantine"] == "0" and page["ready"] == "ready" and page["diskFree"].endswith("B")
    for chart in ("accepted-chart", "rejected-chart", "backlog-chart"):
        assert page["charts"][chart]["width"] >= 480 and page["charts"][chart]["height"] >= 120  # plus its border
    assert page["charts"]["accepted-chart"]["points"] >= 1 and page["charts"]["backlog-chart"]["points"] >= 2
    assert set(page["requests"]) == {f"{gateway.url}/admin"}  # nothing else was fetched (a refresh may repeat it)
    assert page["consoleErrors"] == []
    assert screenshot.stat().st_size > 10_000


def test_status_page_and_schema_only_for_admin_networks(tmp_path: Path) -> None:
    write_config(tmp_path, server={"admin_networks": ["10.0.0.0/8"]})
    gateway = GatewayServer(tmp_path).start()
    try:
        for path in ("/admin", "/schema", "/schema/openapi.json"):
            refused = httpx.get(f"{gateway.url}{path}")
            assert refused.status_code == 403 and "admin_networks" in refused.json()["message"], path
    finally:
        assert gateway.stop() == 0


def test_schema_is_plain_json_and_says_what_a_2xx_means(server: GatewayServer) -> None:
    schema = httpx.get(f"{server.url}/schema")
    assert schema.status_code == 200 and "json" in schema.headers["content-type"]
    document = schema.json()
    assert {"/track", "/track/batch", "/track/device-id", "/readyz"} <= set(document["paths"])
    assert "://" not in schema.text  # nothing to fetch from anywhere
    batch = document["paths"]["/track/batch"]["post"]["responses"]["202"]["description"]
    assert "committed to the gateway's disk before this answer" in batch
    assert "off-line" not in schema.text
    assert "committed to the gateway's disk" in document["paths"]["/track"]["post"]["responses"]["200"]["description"]

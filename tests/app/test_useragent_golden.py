"""Stored agent columns equal OpenPanel's for the same user agents (docs/contract.md §6.1, §10).

The expected values in `tests/data/useragents/golden.json` were produced by OpenPanel's own
`parseUserAgent` (ua-parser-js 2.x under Node): `golden.mjs` beside it reproduces OpenPanel's
wrapper and regenerates the file (`npm ci && node golden.mjs` in that folder). Each agent is
sent through the app as a real request and the row the gateway stored is compared column by
column. Bots are never stored by the gateway (docs/contract.md §6.1): for them the answer is checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from appliance.app import create_app
from appliance.enrich.useragent import AgentKind, classify
from appliance.settings import load_settings
from tests.app.conftest import AppClient
from tests.helpers import AUTH, track, write_config

GOLDEN = json.loads((Path(__file__).resolve().parents[1] / "data" / "useragents" / "golden.json").read_text())
AGENTS: list[dict[str, str]] = GOLDEN["agents"]
COLUMNS = ("device", "os", "os_version", "browser", "browser_version", "brand", "model")
STORED = [a for a in AGENTS if a["kind"] != "bot"]
BOTS = [a for a in AGENTS if a["kind"] == "bot"]
# Where uap-core's device data cannot name what ua-parser-js names, and no table entry can
# recover it from the agent. Listed in docs/behavior.md; the test fails when one starts to match.
KNOWN_DIFFERENCES: dict[str, dict[str, str]] = {
    # uap-core files the Xiaomi under "Generic Smartphone"; ua-parser-js reads the model code.
    "Mozilla/5.0 (Linux; U; Android 13; en-gb; 2201117TG Build/TKQ1.221114.001) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Version/4.0 Chrome/112.0.5615.136 Mobile Safari/537.36 XiaoMi/MiuiBrowser/14.7.4-gn": {"model": ""},
    # uap-core reads Roku's player agent as a Roku browser and OS; ua-parser-js as a device only.
    "Roku/DVP-12.5 (12.5.0.4178-51)": {"os": "Roku", "os_version": "12.5", "browser": "Roku",
                                       "browser_version": "12.5", "brand": "", "model": "Roku"},
}


def test_the_golden_list_is_broad() -> None:
    kinds = {a["kind"] for a in AGENTS}
    assert len(STORED) - len(KNOWN_DIFFERENCES) >= 25
    assert {"desktop browser", "mobile browser", "in-app webview", "sdk http client", "smart tv", "console",
            "bot"} <= kinds


@pytest.mark.parametrize("agent", STORED, ids=[f"{a['kind']}:{a['ua'][:48]}" for a in STORED])
def test_stored_agent_columns_match_openpanel(app_client: AppClient, agent: dict[str, str]) -> None:
    response = app_client.http.post("/track/batch", content=msgspec.json.encode({"events": [track("probe")]}),
                                    headers={**AUTH, "user-agent": agent["ua"]})
    assert response.status_code == 202
    assert response.json()["accepted"] == 1
    names = ", ".join(COLUMNS)
    row = app_client.rows(f"SELECT {names} FROM events WHERE name = 'probe'")
    stored: dict[str, Any] = dict(zip(COLUMNS, row[0], strict=True))
    expected = {column: agent[column] for column in COLUMNS} | KNOWN_DIFFERENCES.get(agent["ua"], {})
    assert stored == expected


@pytest.mark.parametrize("agent", BOTS, ids=[a["ua"][:48] for a in BOTS])
def test_bots_are_refused_not_stored(tmp_path: Path, agent: dict[str, str]) -> None:
    # Bots are looked for among browser pages (origin-checked clients); a secret client never is one.
    page = "https://kiosk.shop.example"
    settings = load_settings(write_config(tmp_path, extra=f'allowed_origins = ["{page}"]'))
    with TestClient(app=create_app(settings)) as client:
        response = client.post("/track/batch", content=msgspec.json.encode({"events": [track("probe")]}),
                               headers={"openpanel-client-id": AUTH["openpanel-client-id"], "origin": page,
                                        "user-agent": agent["ua"]})
        assert [(r["index"], r["reason"]) for r in response.json()["rejected"]] == [(0, "bot")]
        assert AppClient(client).count() == 0


def test_a_headless_browser_is_named_as_openpanel_names_it() -> None:
    headless = next(a for a in BOTS if "HeadlessChrome" in a["ua"])
    agent = classify(headless["ua"])
    # OpenPanel stores it (no bot rule of its own matches); the gateway refuses it as docs/contract.md §6.1 says,
    # under the name OpenPanel gives it.
    assert (agent.kind, agent.browser, agent.browser_version) == (
        AgentKind.BOT, headless["browser"], headless["browser_version"])

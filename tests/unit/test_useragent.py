"""User-agent classes and columns (docs/contract.md §6.1) on a table of real-world user agents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ua_parser

from appliance.enrich import ua_vocabulary as vocabulary
from appliance.enrich.useragent import AgentKind, classify

GOLDEN_FILE = Path(__file__).resolve().parents[1] / "data" / "useragents" / "golden.json"

# (user agent, kind, device, os, browser, brand, model) — what the stored row must say, in
# ua-parser-js's vocabulary as OpenPanel stores it (server agents store nothing but the class).
REAL_AGENTS = [
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.5 Mobile/15E148 Safari/604.1", "device", "mobile", "iOS", "Mobile Safari", "Apple", "iPhone"),
    ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 "
     "Mobile/15E148 Safari/604.1", "device", "tablet", "iOS", "Mobile Safari", "Apple", "iPad"),
    ("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
     "Mobile Safari/537.36", "device", "mobile", "Android", "Mobile Chrome", "Samsung", "SM-S918B"),
    ("Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
     "Safari/537.36", "device", "tablet", "Android", "Chrome", "Samsung", "SM-X710"),
    ("ShopApp/3.2.1 (iPhone; iOS 17.5; Scale/3.00)", "device", "mobile", "iOS", None, "Apple", "iPhone"),
    ("Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP2A.240805.005)",
     "device", "mobile", "Android", None, "Google", "Pixel 8"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
     "Safari/537.36", "device", "desktop", "Windows", "Chrome", "", ""),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:128.0) Gecko/20100101 Firefox/128.0",
     "device", "desktop", "macOS", "Firefox", "Apple", "Macintosh"),
    ("Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/4.0 "
     "Chrome/76.0.3809.146 TV Safari/537.36", "device", "smarttv", "Tizen", "Samsung Internet", "Samsung", None),
    ("Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.79 "
     "Safari/537.36 WebAppManager", "device", "smarttv", "webOS", "Chrome", "", ""),
    ("Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko)",
     "device", "console", None, None, "Sony", "PlayStation 5"),
    ("okhttp/4.12.0", "server", "server", "", "", "", ""),
    ("python-requests/2.31.0", "server", "server", "", "", "", ""),
    ("curl/8.5.0", "server", "server", "", "", "", ""),
    ("ESP8266HTTPClient", "device", "embedded", "", "ESP8266HTTPClient", "", ""),
    ("ESP32HTTPClient", "device", "embedded", "", "ESP32HTTPClient", "", ""),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot", None, None, "Googlebot", None, None),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 "
     "Safari/537.36", "bot", None, None, "Chrome Headless", None, None),
    ("", "server", "server", "", "", "", ""),
]


@pytest.mark.parametrize(("ua", "kind", "device", "os", "browser", "brand", "model"), REAL_AGENTS)
def test_real_user_agents(ua: str, kind: str, device: str | None, os: str | None, browser: str | None,
                          brand: str | None, model: str | None) -> None:
    agent = classify(ua)
    expected = {"kind": kind, "device": device, "os": os, "browser": browser, "brand": brand, "model": model}
    actual = {"kind": str(agent.kind), "device": agent.device, "os": agent.os, "browser": agent.browser,
              "brand": agent.brand, "model": agent.model}
    # None means "whatever the parser says" for columns this row does not pin down.
    assert {k: v for k, v in actual.items() if expected[k] is not None} == {
        k: v for k, v in expected.items() if v is not None
    }


def test_versions_are_dotted() -> None:
    agent = classify("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                     "Version/17.5 Safari/605.1.15")
    assert (agent.os_version, agent.browser_version) == ("14.5.1", "17.5")
    # ua-parser-js (and so OpenPanel) keeps every part of a browser's version.
    chrome = classify("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                      "Chrome/124.0.6367.207 Safari/537.36")
    assert chrome.browser_version == "124.0.6367.207"


def test_unknown_agents_as_devices_per_project() -> None:
    assert classify("KioskFirmware/7", unknown_as_device=False).kind is AgentKind.SERVER
    kiosk = classify("KioskFirmware/7", unknown_as_device=True)
    assert (kiosk.kind, kiosk.device) == (AgentKind.DEVICE, "embedded")
    assert classify("(((", unknown_as_device=True).kind is AgentKind.DEVICE
    # Bots stay bots whatever the project says.
    assert classify("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", True).kind is AgentKind.BOT


def test_results_are_cached() -> None:
    classify.cache_clear()
    classify("curl/8.5.0")
    classify("curl/8.5.0")
    assert classify.cache_info().hits == 1


def test_every_vocabulary_entry_is_pinned_by_the_golden_file() -> None:
    """Each translation in the table is checked against OpenPanel's own output for a real agent."""
    golden = json.loads(GOLDEN_FILE.read_text())["agents"]
    parsed = [(ua_parser.parse(a["ua"]), a) for a in golden]
    for family, name in vocabulary.BROWSER_NAMES.items():
        seen = [a for p, a in parsed if p.user_agent is not None and p.user_agent.family == family]
        assert seen, f"no golden agent for browser {family!r}"
        # Bots OpenPanel's parser sees as servers store no browser; a WebKit view needs the engine's version.
        pinned = [a for a in seen if a["device"] != "server" and (name != "WebKit" or "AppleWebKit/" in a["ua"])]
        assert pinned and all(a["browser"] == name for a in pinned), family
    for family, name in vocabulary.OS_NAMES.items():
        seen = [a for p, a in parsed if p.os is not None and p.os.family == family]
        assert seen and all(a["os"] == name for a in seen), family

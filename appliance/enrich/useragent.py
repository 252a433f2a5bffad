"""What sent a request (docs/contract.md §6.1): a device, a server, or a bot, and its OS/browser/device.

Input: the request's `user-agent` and the project's `unknown_agents` choice. Output: an `Agent`.
ua-parser 1.x (with its `ua-parser-rs` resolver) does the parsing; `ua_vocabulary` spells the
result as ua-parser-js 2.x does, so rows match what OpenPanel stores for the same agent
(`packages/common/server/parser-user-agent.ts`). This module decides what kind of sender it is
and its device class: at an edge site many senders are not browsers (apps, kiosks, firmware,
scripts), and only devices get sessions. A server agent stores nothing but `device = "server"`,
as in OpenPanel. Results are cached per user agent.
"""

from __future__ import annotations

import enum
import re
from functools import lru_cache
from typing import Any

import msgspec
import ua_parser

from appliance.enrich import ua_vocabulary as vocabulary
from appliance.enrich.device_class import app_model, detect_brand, device_class

# A lone `name/version` token: HTTP libraries and scripts (okhttp/4.12.0, curl/8.5.0).
_SINGLE_TOKEN = re.compile(r"^[^\s/()]+(/[^\s/()]*)?$")
# Firmware HTTP clients of IoT devices: no browser, but a real device on the site.
_EMBEDDED = re.compile(
    r"(ESP8266HTTPClient|ESP32HTTPClient|ESP-IDF|arduino|Shelly|Tasmota|Tasmota-HTTPClient|"
    r"ESPHome|Sonoff|Particle|MicroPython|lwIP|Zephyr)",
    re.IGNORECASE,
)
_BOT_FAMILIES = frozenset({"HeadlessChrome", "PhantomJS"})
_SMART_TV = re.compile(r"smart-?tv|\bTV\b|Tizen|Web0S|webOS|AppleTV|CrKey|BRAVIA|HbbTV|Roku|AFT[A-Z]", re.IGNORECASE)
_CONSOLE = re.compile(r"PlayStation|Xbox|Nintendo", re.IGNORECASE)
_TABLET = re.compile(r"iPad|Tablet|Kindle|Silk/|PlayBook|SM-T\d|Tab\b", re.IGNORECASE)
_CACHE_SIZE = 8192


class AgentKind(enum.StrEnum):
    DEVICE = "device"
    SERVER = "server"
    BOT = "bot"


class Agent(msgspec.Struct, frozen=True):
    kind: AgentKind
    device: str = ""
    os: str = ""
    os_version: str = ""
    browser: str = ""
    browser_version: str = ""
    brand: str = ""
    model: str = ""


@lru_cache(maxsize=_CACHE_SIZE)
def classify(user_agent: str, unknown_as_device: bool = False, detect_bots: bool = True) -> Agent:
    """The agent behind a user-agent string (cached).

    `detect_bots=False` for secret-authenticated clients: as OpenPanel's is-bot hook, the secret
    is a far stronger sign of first-party traffic than the agent, so `Python-urllib/3.11` is then
    a server and `HeadlessChrome` (a kiosk renderer) a desktop device.
    """
    ua = user_agent.strip()
    if ua and _EMBEDDED.search(ua):
        return _embedded(ua)
    parsed = ua_parser.parse(ua) if ua else None
    browser = parsed.user_agent if parsed else None
    os = parsed.os if parsed else None
    device = parsed.device if parsed else None
    if detect_bots and (
        (device is not None and device.family == "Spider") or (browser is not None and browser.family in _BOT_FAMILIES)
    ):
        return Agent(AgentKind.BOT, browser=vocabulary.browser_name(browser.family) if browser else "",
                     browser_version=vocabulary.full_version(ua, _version(browser)))
    if device is not None and device.family == "Spider":
        device = None  # ua-parser's "Spider"/"Desktop" is a crawler verdict, not hardware
    unparsed = browser is None and os is None and device is None
    if not ua or unparsed or _SINGLE_TOKEN.match(ua):
        if unknown_as_device:
            return Agent(AgentKind.DEVICE, device="embedded", **_columns(ua, browser, os, device))
        # OpenPanel stores nothing of a server's agent but `device = "server"` (parser-user-agent.ts).
        return Agent(AgentKind.SERVER, device="server")
    fields = _columns(ua, browser, os, device)
    return Agent(AgentKind.DEVICE, device=_device_class(ua, os.family if os else "", fields["model"]), **fields)


def _columns(ua: str, browser: Any, os: Any, device: Any) -> dict[str, str]:
    """os … model as ua-parser-js (so OpenPanel) would store them."""
    browser_name = vocabulary.browser_name(browser.family) if browser else ""
    browser_version = vocabulary.full_version(ua, _version(browser))
    if (not browser_name and "AppleWebKit/" in ua) or browser_name == "WebKit":
        browser_version = vocabulary.webkit_version(ua)
        browser_name = "WebKit" if browser_version else ""
    if ua.startswith("Dalvik/"):
        browser_name = browser_version = ""  # the Android runtime's HTTP client, not a browser
    os_name, os_version = (vocabulary.os_name(os.family), _version(os)) if os else ("", "")
    if os_name == "webOS":
        os_version = vocabulary.webos_version(ua)
    os_name, os_version = vocabulary.console_os(ua) or (os_name, os_version)
    brand = (device.brand or "") if device else ""
    model = (device.model or "") if device else ""
    if brand.startswith("Generic"):
        # ua-parser's placeholders ("Generic_Android", "Generic Smartphone") are not brands.
        model = "" if brand == "Generic" else model
        brand = ""
    if model == "iOS-Device" or "CFNetwork/" in ua:
        # An app's CFNetwork client: ua-parser-js reads only "iOS" from it.
        return {"os": "iOS", "os_version": "", "browser": "", "browser_version": "", "brand": "", "model": ""}
    brand, model = vocabulary.brand_and_model(ua, brand, model)
    # OpenPanel's own fallbacks when ua-parser-js names no vendor (parser-user-agent.ts `parse`).
    model = model or app_model(ua)
    if not brand and (model or os_name):
        brand = detect_brand(ua, model)
    return {"os": os_name, "os_version": os_version, "browser": browser_name, "browser_version": browser_version,
            "brand": brand, "model": model}


def _embedded(ua: str) -> Agent:
    name, _, version = ua.split(" ")[0].partition("/")
    return Agent(AgentKind.DEVICE, device="embedded", browser=name, browser_version=version)


def _device_class(ua: str, os_family: str, model: str) -> str:
    # The classes ua-parser-js types itself (TV, console, tablet) are read from the agent here;
    # for the rest OpenPanel's own fallback decides between mobile and desktop.
    if _SMART_TV.search(ua):
        return "smarttv"
    if _CONSOLE.search(ua):
        return "console"
    if _TABLET.search(ua) or (os_family == "Android" and "Mobile" not in ua and "Dalvik" not in ua):
        return "tablet"
    return device_class(ua, model)


def _version(part: Any) -> str:
    """`17.5.1` from a parsed part's major/minor/patch/patch_minor, as far as they are known."""
    if part is None:
        return ""
    known = []
    for name in ("major", "minor", "patch", "patch_minor"):
        number = getattr(part, name, None)
        if not number:
            break
        known.append(number)
    return ".".join(known)

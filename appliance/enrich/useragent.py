"""What sent a request (docs/contract.md §6.1): a device, a server, or a bot, and its OS/browser/device.

Input: the request's `user-agent` and the project's `unknown_agents` choice. Output: an `Agent`.
ua-parser 1.x (with its `ua-parser-rs` resolver) does the parsing; this module decides the
device class, which ua-parser does not: at an edge site many senders are not browsers (apps,
kiosks, firmware, scripts), and only devices get sessions. Results are cached per user agent.
"""

from __future__ import annotations

import enum
import re
from functools import lru_cache

import msgspec
import ua_parser

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
_MOBILE_OS = frozenset({"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "HarmonyOS"})
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
def classify(user_agent: str, unknown_as_device: bool = False) -> Agent:
    """The agent behind a user-agent string (cached)."""
    ua = user_agent.strip()
    if ua and _EMBEDDED.search(ua):
        return _embedded(ua)
    parsed = ua_parser.parse(ua) if ua else None
    browser = parsed.user_agent if parsed else None
    os = parsed.os if parsed else None
    device = parsed.device if parsed else None
    if (device is not None and device.family == "Spider") or (browser is not None and browser.family in _BOT_FAMILIES):
        return Agent(AgentKind.BOT, browser=browser.family if browser else "", browser_version=_version(browser))
    fields = {
        "os": os.family if os else "",
        "os_version": _version(os),
        "browser": browser.family if browser else "",
        "browser_version": _version(browser),
        "brand": _brand(device.brand) if device else "",
        "model": (device.model or "") if device else "",
    }
    unparsed = browser is None and os is None and device is None
    if not ua or unparsed or _SINGLE_TOKEN.match(ua):
        if unknown_as_device:
            return Agent(AgentKind.DEVICE, device="embedded", **fields)
        if not fields["browser"] and _SINGLE_TOKEN.match(ua):
            name, _, version = ua.partition("/")
            fields["browser"], fields["browser_version"] = name, version
        return Agent(AgentKind.SERVER, device="server", **fields)
    return Agent(AgentKind.DEVICE, device=_device_class(ua, fields["os"]), **fields)


def _embedded(ua: str) -> Agent:
    name, _, version = ua.split(" ")[0].partition("/")
    return Agent(AgentKind.DEVICE, device="embedded", browser=name, browser_version=version)


def _device_class(ua: str, os_family: str) -> str:
    if _SMART_TV.search(ua):
        return "smarttv"
    if _CONSOLE.search(ua):
        return "console"
    if _TABLET.search(ua) or (os_family == "Android" and "Mobile" not in ua and "Dalvik" not in ua):
        return "tablet"
    if os_family in _MOBILE_OS or "Mobile" in ua or "iPhone" in ua:
        return "mobile"
    return "desktop"


def _brand(brand: str | None) -> str:
    # ua-parser's placeholders ("Generic_Android", "Generic_Android_Tablet") are not brands.
    return "" if not brand or brand.startswith("Generic") else brand


def _version(part: object) -> str:
    """`17.5.1` from a parsed part's major/minor/patch, as far as they are known."""
    if part is None:
        return ""
    numbers = [getattr(part, name, None) for name in ("major", "minor", "patch")]
    known = []
    for number in numbers:
        if not number:
            break
        known.append(number)
    return ".".join(known)

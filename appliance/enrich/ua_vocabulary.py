"""ua-parser's names and versions, spelled as ua-parser-js 2.x (and so OpenPanel) spells them.

Input: what ua-parser (uap-core rules, `ua-parser-rs`) parsed from a user agent, and the agent
itself. Output: OpenPanel's column values: browser and OS names, full versions, brand and model.
OpenPanel parses with ua-parser-js 2.x (`packages/common/server/parser-user-agent.ts`); the
gateway keeps the faster native parser and translates its vocabulary with the tables below,
falling back to the parsed value for anything they do not name. Each entry is pinned by
`tests/data/useragents/golden.json`, produced by running OpenPanel's parser itself.
Place on the path: called by `appliance.enrich.useragent` (cached per agent).
"""

from __future__ import annotations

import re

# uap-core browser family → ua-parser-js browser name.
BROWSER_NAMES: dict[str, str] = {
    "Chrome Mobile": "Mobile Chrome",
    "Chrome Mobile iOS": "Mobile Chrome",
    "Chrome Mobile WebView": "Chrome WebView",
    "Firefox Mobile": "Mobile Firefox",
    "Firefox iOS": "Mobile Firefox",
    "HeadlessChrome": "Chrome Headless",
    "Edge Mobile": "Edge",
    "Opera Mobile": "Opera",
    "Yandex Browser": "Yandex",
    "DuckDuckGo Mobile": "DuckDuckGo",
    "UC Browser": "UCBrowser",
    "MiuiBrowser": "MIUI Browser",
    "Amazon Silk": "Silk",
    # ua-parser-js names a WebKit view without a browser token after the engine.
    "Mobile Safari UI/WKWebView": "WebKit",
    "Apple Mail": "WebKit",
}

# uap-core OS family → ua-parser-js OS name.
OS_NAMES: dict[str, str] = {
    "Mac OS X": "macOS",
    "Web0S": "webOS",
}

# uap-core model → ua-parser-js model, for devices whose model ua-parser-js spells differently
# ("" where ua-parser-js names no model).
MODELS: dict[tuple[str, str], str] = {
    ("Apple", "Mac"): "Macintosh",
    ("Samsung", "SMART-TV"): "",
    ("LG", "Web0S SmartTV"): "",
}
# Brands ua-parser-js does not name for these models.
_NO_BRAND_MODELS = frozenset({("LG", "Web0S SmartTV")})
# iPhone15,2 / iPad13,4: ua-parser-js names the product line only.
_APPLE_HARDWARE_ID = re.compile(r"^(iPhone|iPad|iPod)\d+,\d+$")
# Samsung's model numbers (SM-X710) that uap-core files under a generic Android brand.
_SAMSUNG_MODEL = re.compile(r"^SM-[A-Z]\d", re.IGNORECASE)
# Realme phones (RMX2185), which uap-core files under Oppo.
_REALME_MODEL = re.compile(r"^RMX\d+$")
# Amazon's Fire tablets: ua-parser-js keeps the agent's own KF... model code.
_KINDLE_CODE = re.compile(r"Android [\d.]+; (KF\w+)")
# Amazon Fire TV sticks (AFTMM): ua-parser-js takes the letters after "AFT" as the model.
_FIRE_TV = re.compile(r"^AFT(\w+)$")
# Consoles: ua-parser-js reads the OS from the console's own token (ua-parser-js `os` rules).
_CONSOLE_OS = (
    re.compile(r"(xbox); +xbox ([^);]+)", re.IGNORECASE),
    re.compile(r"(nintendo|playstation) (\w+)", re.IGNORECASE),
)
_CONSOLE_OS_NAMES = {"xbox": "Xbox", "nintendo": "Nintendo", "playstation": "PlayStation"}
_XBOX = re.compile(r"\bXbox\b", re.IGNORECASE)
# LG's webOS TVs: ua-parser-js maps the engine's Chrome major to the webOS release.
_WEBOS_CHROME = re.compile(r"web0s;.+?(?:chr[o0]me|safari)/(\d+)", re.IGNORECASE)
_WEBOS_BY_CHROME = {"120": "25", "108": "24", "94": "23", "87": "22", "79": "6", "68": "5", "53": "4", "38": "3",
                    "538": "2", "537": "1"}
_WEBKIT = re.compile(r"AppleWebKit/([\d.]+)", re.IGNORECASE)


def browser_name(family: str) -> str:
    """The browser as ua-parser-js names it."""
    return BROWSER_NAMES.get(family, family)


def os_name(family: str) -> str:
    """The operating system as ua-parser-js names it."""
    return OS_NAMES.get(family, family)


def full_version(ua: str, parsed: str) -> str:
    """The whole dotted version as the agent states it (`124.0.0.0`, `468.1.0.56.109`).

    uap-core keeps at most four parts and ua-parser-js all of them, so the parsed prefix is
    extended with the dotted numbers that follow it in the agent.
    """
    if not parsed:
        return ""
    match = re.search(rf"(?<![\d.]){re.escape(parsed)}((?:\.\d+)*)", ua)
    return parsed + match.group(1) if match else parsed


def webkit_version(ua: str) -> str:
    """The AppleWebKit version, which ua-parser-js reports for a bare WebKit view."""
    match = _WEBKIT.search(ua)
    return match.group(1) if match else ""


def console_os(ua: str) -> tuple[str, str] | None:
    """(name, version) of a console's OS as ua-parser-js reads it (`Xbox`, `Series X`)."""
    for pattern in _CONSOLE_OS:
        match = pattern.search(ua)
        if match:
            return _CONSOLE_OS_NAMES[match.group(1).lower()], match.group(2)
    return None


def webos_version(ua: str) -> str:
    """The webOS TV release of an LG TV agent ("TV" when the engine is not in ua-parser-js's table)."""
    match = _WEBOS_CHROME.search(ua)
    return _WEBOS_BY_CHROME.get(match.group(1), "TV") if match else ""


def brand_and_model(ua: str, brand: str, model: str) -> tuple[str, str]:
    """Brand and model as ua-parser-js names them, from uap-core's (placeholders already blank)."""
    key = (brand, model)
    if key in MODELS:
        return ("" if key in _NO_BRAND_MODELS else brand), MODELS[key]
    if brand == "Apple" and (hardware := _APPLE_HARDWARE_ID.match(model)):
        return brand, hardware.group(1)
    if brand == "Oppo" and _REALME_MODEL.match(model):
        return "Realme", model
    if key == ("Amazon", "Kindle") and (code := _KINDLE_CODE.search(ua)):
        return brand, code.group(1)
    if brand == "Motorola" and f"moto {model}" in ua:
        return brand, f"moto {model}"  # ua-parser-js keeps the "moto" of "moto g(60)"
    if not brand and model.startswith("BRAVIA"):
        return "Sony", model
    if not brand and _SAMSUNG_MODEL.match(model):
        return "Samsung", model
    if not brand and (fire_tv := _FIRE_TV.match(model)):
        return "Amazon", fire_tv.group(1)
    if not brand and not model and _XBOX.search(ua):
        return "Microsoft", "Xbox"
    return brand, model

"""`allowed_origins` (docs/contract.md §3.1): which page origins may send without the secret."""

from __future__ import annotations

import pytest

from appliance.origins import InvalidOrigin, OriginPolicy


def allows(entries: list[str], origin: str | None) -> bool:
    return OriginPolicy.parse(entries).allows(origin)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://kiosk.shop.example", True),
        ("HTTPS://Kiosk.Shop.Example", True),  # scheme and host are case-insensitive
        ("https://kiosk.shop.example:443", True),  # the default port, written out
        ("http://kiosk.shop.example", False),  # another scheme is another origin
        ("https://kiosk.shop.example:8443", False),
        ("https://shop.example", False),
        ("https://kiosk.shop.example.attacker.net", False),
        ("https://evil-kiosk.shop.example", False),
    ],
)
def test_exact_origin(origin: str, allowed: bool) -> None:
    assert allows(["https://kiosk.shop.example/"], origin) is allowed  # a trailing slash is ignored


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://tablet.intranet.example", True),
        ("http://tablet.intranet.example", True),  # no scheme in the entry: http or https
        ("https://a.b.intranet.example", True),  # any depth
        ("https://intranet.example", False),  # the apex is not a subdomain of itself
        ("https://evilintranet.example", False),
        ("https://tablet.intranet.example.attacker.net", False),  # OpenPanel's unanchored regex would allow it
        ("https://tablet.intranet.example:8443", False),  # the default port only
        ("ftp://tablet.intranet.example", False),
    ],
)
def test_wildcard(origin: str, allowed: bool) -> None:
    assert allows(["*.intranet.example"], origin) is allowed


def test_wildcard_with_scheme_and_port() -> None:
    entries = ["http://*.shop.example:3000"]
    assert allows(entries, "http://pos-1.shop.example:3000")
    assert not allows(entries, "https://pos-1.shop.example:3000")
    assert not allows(entries, "http://pos-1.shop.example")


def test_host_with_port_and_addresses() -> None:
    assert allows(["localhost:5173"], "http://localhost:5173")
    assert not allows(["localhost:5173"], "http://localhost:5174")
    assert allows(["http://10.0.0.5:8080"], "http://10.0.0.5:8080")
    assert allows(["http://[fd00::5]:8080"], "http://[FD00::5]:8080")
    assert not allows(["http://[fd00::5]:8080"], "http://[fd00::6]:8080")


def test_star_allows_any_origin_but_needs_one() -> None:
    assert allows(["*"], "https://anything.example")
    assert allows(["*"], "null")
    assert not allows(["*"], None)
    assert not allows(["*"], "")


def test_missing_origin_is_never_allowed() -> None:
    for entries in (["https://kiosk.shop.example"], ["*.shop.example"], ["null"], ["*"], []):
        assert not allows(entries, None)


def test_null_origin_only_when_listed() -> None:
    # file:// kiosk pages and sandboxed frames send `Origin: null`.
    assert allows(["null"], "null")
    assert not allows(["https://kiosk.shop.example", "*.shop.example"], "null")


def test_empty_list_allows_nothing() -> None:
    policy = OriginPolicy.parse([])
    assert policy.is_empty
    assert not policy.allows("https://kiosk.shop.example")


def test_garbage_origin_headers_are_not_allowed() -> None:
    entries = ["*.shop.example", "https://kiosk.shop.example"]
    for origin in ("kiosk.shop.example", "https://", "https://kiosk.shop.example:99999", "javascript:alert(1)",
                   "https://kiosk.shop.example/path"):
        assert not allows(entries, origin), origin


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("ftp://files.example", "scheme must be http or https"),
        ("https://kiosk.example/app", "an origin has no path"),
        ("https://user@kiosk.example", "an origin has no path, query or credentials"),
        ("https://kiosk.example:0", "port must be a number from 1 to 65535"),
        ("https://kiosk.example:http", "port must be a number"),
        ("https://ki*sk.example", "not a host name"),
        ("https://*", "not a host name"),
        ("", "not a host name"),
    ],
)
def test_unusable_entries_are_refused_by_position(entry: str, problem: str) -> None:
    with pytest.raises(InvalidOrigin, match=r"^\[1\]: ") as raised:
        OriginPolicy.parse(["https://fine.example", entry])
    assert problem in str(raised.value)

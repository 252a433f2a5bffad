"""Path, origin, query, hash and the referrer triple (docs/contract.md §6.3)."""

from __future__ import annotations

import pytest

from appliance.enrich.page_url import PageLocation, parse_location
from appliance.enrich.referrer import Referrer, ReferrerTable, referrer_of

TABLE = ReferrerTable.bundled()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://Shop.Example.com/cart?step=2&utm_source=newsletter#pay",
         PageLocation("https://shop.example.com", "/cart", {"step": "2", "utm_source": "newsletter"}, "#pay")),
        ("http://10.0.0.5:8080", PageLocation("http://10.0.0.5:8080", "/", {}, "")),
        # A repeated parameter keeps its last value, and the hash its `#`, as in OpenPanel's parsePath.
        ("/catalog/shoes?size=42&size=43", PageLocation("", "/catalog/shoes", {"size": "43"}, "")),
        ("/faq#returns", PageLocation("", "/faq", {}, "#returns")),
        ("/faq#", PageLocation("", "/faq", {}, "")),
        ("https://shop.example.com:443/a", PageLocation("https://shop.example.com", "/a", {}, "")),
        ("CheckoutScreen", PageLocation("", "CheckoutScreen", {}, "")),
        ("", PageLocation()),
    ],
)
def test_parse_location(value: str, expected: PageLocation) -> None:
    assert parse_location(value) == expected


@pytest.mark.parametrize(
    ("raw", "page", "expected"),
    [
        ("https://www.google.de/search?q=shoes", "/home", Referrer("https://www.google.de/search?q=shoes", "Google", "search")),
        ("https://m.facebook.com/", "/home", Referrer("https://m.facebook.com", "Facebook", "social")),
        ("https://mail.google.com/mail/u/0/", "/home", Referrer("https://mail.google.com/mail/u/0", "Gmail", "email")),
        ("https://chatgpt.com/", "/home", Referrer("https://chatgpt.com", "ChatGPT", "ai")),
        # An unknown host is named by its URL, with no type (OpenPanel: `referrer.name || referrer.url`).
        ("https://blog.example.org/post/", "/home",
         Referrer("https://blog.example.org/post", "https://blog.example.org/post", "")),
        # Hosts are matched exactly or without `www.`, never by a parent domain.
        ("https://forum.facebook.com/", "/home", Referrer("https://forum.facebook.com", "https://forum.facebook.com", "")),
        # Without a scheme there is no host to look up.
        ("google.com", "/home", Referrer("google.com", "google.com", "")),
        # Internal navigation is not a referrer.
        ("https://shop.example.com/cart", "https://shop.example.com/pay", Referrer()),
        # A campaign parameter wins over the referrer host; known sources get their proper name.
        ("https://www.google.com/", "https://shop.example.com/?utm_source=facebook", Referrer("https://www.google.com", "Facebook", "social")),
        ("", "/landing?ref=producthunt", Referrer("", "producthunt", "")),
        # An unknown source names itself (lowercased) and keeps the referrer's type.
        ("https://www.google.com/", "/?utm_source=Newsletter", Referrer("https://www.google.com", "newsletter", "search")),
        # A source is also looked up as a host and as a host with `.com`.
        ("", "/?utm_source=google", Referrer("", "Google", "search")),
        # The first campaign parameter present decides.
        ("", "/?utm_source=bing&ref=facebook", Referrer("", "Bing", "search")),
        ("", "/home", Referrer()),
    ],
)
def test_referrer(raw: str, page: str, expected: Referrer) -> None:
    assert referrer_of(raw, parse_location(page), TABLE) == expected


def test_bundled_table_has_source_and_ai_entries() -> None:
    assert TABLE.by_host("www.bing.com") == ("Bing", "search")
    assert TABLE.by_host("perplexity.ai") == ("Perplexity", "ai")
    assert TABLE.by_host("example.invalid") is None

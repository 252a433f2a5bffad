"""Path, origin, query, hash and the referrer triple (docs/contract.md §6.3)."""

from __future__ import annotations

import pytest

from appliance.enrich.location import PageLocation, parse_location
from appliance.enrich.referrer import Referrer, ReferrerTable, referrer_of

TABLE = ReferrerTable.bundled()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://Shop.Example.com/cart?step=2&utm_source=newsletter#pay",
         PageLocation("https://shop.example.com", "/cart", {"step": "2", "utm_source": "newsletter"}, "pay")),
        ("http://10.0.0.5:8080", PageLocation("http://10.0.0.5:8080", "/", {}, "")),
        ("/catalog/shoes?size=42&size=43", PageLocation("", "/catalog/shoes", {"size": "42"}, "")),
        ("/faq#returns", PageLocation("", "/faq", {}, "returns")),
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
        ("https://blog.example.org/post/", "/home", Referrer("https://blog.example.org/post", "", "unknown")),
        # Internal navigation is not a referrer.
        ("https://shop.example.com/cart", "https://shop.example.com/pay", Referrer()),
        # A campaign parameter wins over the referrer host; known sources get their proper name.
        ("https://www.google.com/", "https://shop.example.com/?utm_source=facebook", Referrer("https://www.google.com", "Facebook", "social")),
        ("", "/landing?ref=producthunt", Referrer("", "producthunt", "")),
        ("", "/home", Referrer()),
    ],
)
def test_referrer(raw: str, page: str, expected: Referrer) -> None:
    assert referrer_of(raw, parse_location(page), TABLE) == expected


def test_bundled_table_has_source_and_ai_entries() -> None:
    assert TABLE.by_host("www.bing.com") == ("Bing", "search")
    assert TABLE.by_host("perplexity.ai") == ("Perplexity", "ai")
    assert TABLE.by_host("example.invalid") is None

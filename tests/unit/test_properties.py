"""Flattening of stored properties (docs/contract.md §6.3)."""

from __future__ import annotations

from appliance.properties import flatten_properties


def test_nested_objects_become_dotted_keys_and_values_strings() -> None:
    flat = flatten_properties(
        {
            "cart": {"items": 3, "total": 42.5, "coupon": None, "note": ""},
            "tags": ["a", "b"],
            "ok": True,
            "off": False,
            "__path": "/checkout",
            "__referrer": "https://example.com",
            "__timestamp": 1,
            "__revenue": 5,
            "__insertId": "keep-me",
        }
    )
    assert flat == {
        "cart.items": "3",
        "cart.total": "42.5",
        "tags.0": "a",
        "tags.1": "b",
        "ok": "true",
        "off": "false",
        "__insertId": "keep-me",
    }

"""Stored properties: flat `string → string` (SPEC §6.3).

Input: a payload's `properties` object. Output: a flat dict whose nested objects became dotted
keys and lists `key.0`, `key.1`…; `null` and `""` are dropped, booleans become `true`/`false`,
numbers their decimal text. The special properties the gateway consumes are not stored.
"""

from __future__ import annotations

from typing import Any

CONSUMED_PROPERTIES = frozenset({"__path", "__referrer", "__timestamp", "__revenue"})


def flatten_properties(properties: dict[str, Any]) -> dict[str, str]:
    """Flatten and stringify a properties object, without the consumed special keys."""
    flat: dict[str, str] = {}
    for key, value in properties.items():
        if key not in CONSUMED_PROPERTIES:
            _add(flat, key, value)
    return flat


def _add(flat: dict[str, str], key: str, value: Any) -> None:
    # Recursion is bounded: validation refuses properties nested deeper than 8 levels.
    # Exact type checks: this runs for every leaf of every event, and msgspec only makes
    # these types.
    kind = type(value)
    if kind is str:
        if value:
            flat[key] = value
    elif kind is dict:
        for child_key, child in value.items():
            _add(flat, f"{key}.{child_key}", child)
    elif kind is list:
        for position, child in enumerate(value):
            _add(flat, f"{key}.{position}", child)
    elif kind is bool:
        flat[key] = "true" if value else "false"
    elif value is not None:
        flat[key] = str(value)

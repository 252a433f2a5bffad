"""Stored properties: flat `string → string` (docs/contract.md §6.3).

Input: a payload's `properties` object. Output: a flat dict whose nested objects became dotted
keys and lists `key.0`, `key.1`…; `null` and `""` are dropped, booleans become `true`/`false`,
numbers their decimal text. The special properties the gateway consumes are not stored.
"""

from __future__ import annotations

from typing import Any

CONSUMED_PROPERTIES = frozenset({"__path", "__referrer", "__timestamp", "__revenue"})


MAX_PROPERTY_DEPTH = 8


class PropertiesTooDeep(ValueError):
    """Properties nest deeper than MAX_PROPERTY_DEPTH levels (the properties object is level 1)."""


def flatten_properties(properties: dict[str, Any]) -> dict[str, str]:
    """Flatten and stringify a properties object, without the consumed special keys.

    Raises PropertiesTooDeep past the nesting limit: validation and flattening are one walk.
    """
    flat: dict[str, str] = {}
    for key, value in properties.items():
        if key not in CONSUMED_PROPERTIES:
            _add(flat, key, value, 2)
    return flat


def _add(flat: dict[str, str], key: str, value: Any, level: int) -> None:
    # Exact type checks: this runs for every leaf of every event, and msgspec only makes these
    # types. Recursion stops at the depth limit, so a hostile document cannot exhaust the stack.
    kind = type(value)
    if kind is str:
        if value:
            flat[key] = value
    elif kind is dict or kind is list:
        if level > MAX_PROPERTY_DEPTH:
            raise PropertiesTooDeep(f"nested deeper than {MAX_PROPERTY_DEPTH} levels")
        children = value.items() if kind is dict else enumerate(value)
        for child_key, child in children:
            _add(flat, f"{key}.{child_key}", child, level + 1)
    elif kind is bool:
        flat[key] = "true" if value else "false"
    elif value is not None:
        flat[key] = str(value)

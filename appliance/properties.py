"""Stored properties: flat `string → string` (SPEC §6.3).

Input: a payload's `properties` object. Output: a flat dict whose nested objects became dotted
keys and lists `key.0`, `key.1`…; `null` and `""` are dropped, other values stringified as JSON
would spell them. The special properties the gateway consumes are not stored.
"""

from __future__ import annotations

from typing import Any

CONSUMED_PROPERTIES = frozenset({"__path", "__referrer", "__timestamp", "__revenue"})


def flatten_properties(properties: dict[str, Any]) -> dict[str, str]:
    """Flatten and stringify a properties object, without the consumed special keys."""
    flat: dict[str, str] = {}
    # Explicit stack instead of recursion: depth is validated, but cheap to be safe.
    pending: list[tuple[str, Any]] = [
        (key, value) for key, value in reversed(properties.items()) if key not in CONSUMED_PROPERTIES
    ]
    while pending:
        key, value = pending.pop()
        if isinstance(value, dict):
            pending.extend((f"{key}.{k}", v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            pending.extend((f"{key}.{i}", v) for i, v in reversed(list(enumerate(value))))
        elif value is None or value == "":
            continue
        elif isinstance(value, bool):
            flat[key] = "true" if value else "false"
        else:
            flat[key] = str(value)
    return flat

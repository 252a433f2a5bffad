"""Stored properties: flat `string → string` (docs/contract.md §6.3), within what one event may hold.

Input: a payload's `properties` as raw JSON bytes and the `PropertyLimits`. Output: the decoded
object and a flat dict whose nested objects became dotted keys and lists `key.0`, `key.1`…;
`null` and `""` are dropped, booleans become `true`/`false`, numbers their decimal text. The
special properties the gateway consumes are not stored.

The limits are checked before and during the walk, never after it: the raw size before anything
is decoded, then keys, array items, string length and the bytes of the flat result as each entry
is reached. A hostile row (millions of tiny array items, long keys repeated in every dotted path)
therefore costs at most a small multiple of `max_properties_bytes` before it is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

CONSUMED_PROPERTIES = frozenset({"__path", "__referrer", "__timestamp", "__revenue"})


MAX_PROPERTY_DEPTH = 8

_OBJECT_DECODER = msgspec.json.Decoder(dict[str, Any])


@dataclass(frozen=True, slots=True)
class PropertyLimits:
    """What one event's properties may hold (`[limits]` in config.toml)."""

    max_bytes: int = 65536
    max_keys: int = 1000
    max_array_items: int = 1000
    max_string_chars: int = 16384


class PropertiesInvalid(ValueError):
    """The properties break a limit or are not an object; the message says which."""


class PropertiesTooDeep(PropertiesInvalid):
    """Properties nest deeper than MAX_PROPERTY_DEPTH levels (the properties object is level 1)."""


def decode_properties(raw: bytes | msgspec.Raw, limits: PropertyLimits) -> dict[str, Any]:
    """Raw JSON → the properties object; refused unread when larger than `limits.max_bytes`."""
    size = len(raw)
    if size > limits.max_bytes:
        raise PropertiesInvalid(f"larger than {limits.max_bytes} bytes ({size})")
    try:
        decoded: dict[str, Any] = _OBJECT_DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        text, _, where = str(exc).partition(" - at `$")
        where = where.rstrip("`")
        raise PropertiesInvalid(f"{text[:1].lower()}{text[1:]}" + (f" at {where}" if where else "")) from None
    except UnicodeDecodeError:  # the envelope skips over item strings without decoding them
        raise PropertiesInvalid("strings must be valid UTF-8") from None
    except RecursionError:
        raise PropertiesTooDeep(f"nested deeper than {MAX_PROPERTY_DEPTH} levels") from None
    return decoded


def flatten_properties(properties: dict[str, Any], limits: PropertyLimits | None = None) -> dict[str, str]:
    """Flatten and stringify a properties object, without the consumed special keys.

    Raises PropertiesInvalid (or PropertiesTooDeep) at the first limit passed: validation and
    flattening are one walk.
    """
    walk = _Walk(limits or PropertyLimits())
    walk.container(properties, "", 1)
    return walk.flat


class _Walk:
    """One flattening walk, counting what the limits bound as it goes.

    Leaves are handled inline in `container`'s loop, not by a call each: this runs for every
    leaf of every event (a third of a request's preparation, `bench/ingest.py`).
    """

    __slots__ = ("bytes", "flat", "keys", "limits")

    def __init__(self, limits: PropertyLimits) -> None:
        self.limits = limits
        self.flat: dict[str, str] = {}
        self.keys = 0
        self.bytes = 0

    def container(self, value: dict[str, Any] | list[Any], prefix: str, level: int) -> None:
        """Store the leaves of an object or array at `level` (the properties object is 1) and
        walk the containers in it."""
        limits = self.limits
        max_chars = limits.max_string_chars
        is_object = type(value) is dict
        if not is_object and len(value) > limits.max_array_items:
            raise PropertiesInvalid(f"{prefix}: more than {limits.max_array_items} array items")
        self.keys += len(value)
        if self.keys > limits.max_keys:
            raise PropertiesInvalid(f"more than {limits.max_keys} keys")
        flat = self.flat
        entries: Iterable[tuple[Any, Any]] = value.items() if is_object else enumerate(value)  # type: ignore[union-attr]
        name: str
        for key, child in entries:
            if is_object:
                if len(key) > max_chars:
                    raise PropertiesInvalid(f"key longer than {max_chars} characters")
                if level == 1 and key in CONSUMED_PROPERTIES:
                    continue
                name = f"{prefix}.{key}" if prefix else key
            else:
                name = f"{prefix}.{key}"
            # Exact type checks: msgspec only makes these types.
            kind = type(child)
            if kind is str:
                if len(child) > max_chars:
                    raise PropertiesInvalid(f"{name}: string longer than {max_chars} characters")
                if not child:
                    continue
                text = child
            elif kind is dict or kind is list:
                # Recursion stops at the depth limit, so a hostile document cannot exhaust the stack.
                if level + 1 > MAX_PROPERTY_DEPTH:
                    raise PropertiesTooDeep(f"nested deeper than {MAX_PROPERTY_DEPTH} levels")
                self.container(child, name, level + 1)
                continue
            elif kind is bool:
                text = "true" if child else "false"
            elif child is None:
                continue
            else:
                text = str(child)
            # Dotted keys repeat their parents' names, so the stored text can outgrow the JSON sent.
            self.bytes += len(name) + len(text)
            if self.bytes > limits.max_bytes:
                raise PropertiesInvalid(f"more than {limits.max_bytes} bytes once flattened")
            flat[name] = text

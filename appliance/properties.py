"""Stored properties: flat `string → string` (docs/contract.md §6.3), within what one event may hold.

Input: a payload's `properties` as raw JSON bytes and the `PropertyLimits`. Output: the decoded
object and a flat dict whose nested objects became dotted keys and lists `key.0`, `key.1`…;
`null` and `""` are dropped, booleans become `true`/`false`, numbers their decimal text. The
special properties the gateway consumes are not stored.

The limits are checked before and during the walk, never after it: the raw size before anything
is decoded, then keys, array items, string length and the bytes of the flat result as each entry
is reached. A hostile row (millions of tiny array items, long keys repeated in every dotted path)
therefore costs at most a small multiple of `max_properties_bytes` before it is refused.

Events mostly repeat the same objects (the SDK's context, global properties), within a batch and
from one batch of a device to the next: with a `FlattenMemo` (the gateway keeps one, bounded),
`decode_and_flatten` decodes and walks each distinct top-level object or array once, and counts it
toward every event's limits as the walk would have.
"""

from __future__ import annotations

import threading
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


_TOP_LEVEL_DECODER = msgspec.json.Decoder(dict[str, msgspec.Raw])
_VALUE_DECODER = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class _FlatValue:
    """One top-level container value, decoded and flattened under its key."""

    value: dict[str, Any] | list[Any]
    entries: dict[str, str]  # a dict, not pairs: `dict.update` copies a dict several times faster
    keys: int  # what it adds to the walk's key count
    bytes: int  # and to its flattened bytes


class FlattenMemo:
    """Top-level objects and arrays of events, decoded and flattened once each.

    SDKs repeat the same context on every event (device, app, locale, campaign), within a batch
    and in every batch the device sends after it; this walks each distinct `(key, raw JSON)` once.
    A value whose walk breaks a rule is remembered as such: its event takes the plain path, which
    raises exactly what it always raised. The events that repeat a value share its decoded object,
    so nothing may change it. What a value flattens to depends on the limits, so one memo serves
    one `PropertyLimits` (the gateway keeps one, for the configured limits; they change only on restart).

    Bounded: once the raw JSON of the values held passes `max_text_bytes` or `max_entries`, the
    memo starts again empty (what is held costs about ten times its JSON: the decoded object and
    its flat entries; 1 MiB of SDK contexts measured 11 MiB). Starting over costs a re-walk of
    what comes next, nothing else, so a client sending ever-new objects only pays its own walks.
    Safe to share between threads: a lookup is one dict read; adding takes a lock.
    """

    __slots__ = ("_held", "_lock", "max_entries", "max_text_bytes", "values")

    def __init__(self, max_text_bytes: int = 1024 * 1024, max_entries: int = 8192) -> None:
        self.values: dict[tuple[str, bytes], _FlatValue | None] = {}
        self.max_text_bytes = max_text_bytes
        self.max_entries = max_entries
        self._held = 0
        self._lock = threading.Lock()

    def add(self, key: str, text: bytes, found: _FlatValue | None) -> None:
        size = len(key) + len(text)
        if size > self.max_text_bytes:
            return
        with self._lock:
            if self._held + size > self.max_text_bytes or len(self.values) >= self.max_entries:
                self.values = {}
                self._held = 0
            self.values[(key, text)] = found
            self._held += size


def decode_and_flatten(raw: bytes | msgspec.Raw, limits: PropertyLimits,
                       memo: FlattenMemo | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """`decode_properties` then `flatten_properties`, the same result and the same errors;
    with a `memo`, repeated top-level objects and arrays are reused instead of walked again."""
    if memo is not None and len(raw) <= limits.max_bytes:
        reused = _with_memo(raw, limits, memo)
        if reused is not None:
            return reused
    properties = decode_properties(raw, limits)
    return properties, flatten_properties(properties, limits)


def _with_memo(raw: bytes | msgspec.Raw, limits: PropertyLimits,
               memo: FlattenMemo) -> tuple[dict[str, Any], dict[str, str]] | None:
    """The memo's path, or None wherever it is in any doubt (a rule broken, text it cannot
    decode): the plain path then decides, with its own message."""
    try:
        top = _TOP_LEVEL_DECODER.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    max_chars = limits.max_string_chars
    properties: dict[str, Any] = {}
    flat: dict[str, str] = {}
    keys = len(top)
    size = 0
    values = memo.values
    for key, encoded in top.items():
        if len(key) > max_chars:
            return None
        text = bytes(encoded)
        if text[0] in _OPENING:  # an object or an array (msgspec's raw values start at the value)
            found = values.get((key, text), _MISSING)
            if found is _MISSING:
                found = _flat_value(key, text, limits)
                memo.add(key, text, found)
            if found is None:
                return None
            assert isinstance(found, _FlatValue)
            properties[key] = found.value
            if key not in CONSUMED_PROPERTIES:
                keys += found.keys
                size += found.bytes
                flat.update(found.entries)  # in order, as the walk made them
            continue
        try:
            value = _VALUE_DECODER.decode(text)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return None
        kind = type(value)
        if kind is dict or kind is list:  # not what the first byte said: let the plain path walk it
            return None
        properties[key] = value
        if key in CONSUMED_PROPERTIES:
            continue
        # A top-level leaf, by the rule `_Walk.container` inlines for every leaf: change both.
        if kind is str:
            if len(value) > max_chars:
                return None
            if not value:
                continue
            leaf = value
        elif kind is bool:
            leaf = "true" if value else "false"
        elif value is None:
            continue
        else:
            leaf = str(value)
        size += len(key) + len(leaf)
        flat[key] = leaf
    if keys > limits.max_keys or size > limits.max_bytes:
        return None
    return properties, flat


_MISSING = object()
_OPENING = frozenset(b"{[")


def _flat_value(key: str, text: bytes, limits: PropertyLimits) -> _FlatValue | None:
    try:
        value = _VALUE_DECODER.decode(text)
        walk = _Walk(limits)
        walk.container(value, key, 2)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, PropertiesInvalid):
        return None
    return _FlatValue(value, walk.flat, walk.keys, walk.bytes)


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
            # Exact type checks: msgspec only makes these types. `_with_memo` repeats this rule
            # for top-level leaves: change both.
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

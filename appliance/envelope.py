"""The batch envelope: a request body split into its raw items (docs/contract.md §3.4).

Input: the decompressed body of `POST /track/batch` and `limits.max_batch_events`. Output: the
raw JSON of each item, plus the items refused before decoding (a lone surrogate escape). Problems
of the envelope itself (not JSON, no `events`, too many items) are `BadRequest` for the request.

Two things a plain decode of `{"events": [...]}` gets wrong are handled here:

- **Item count before the items exist.** msgspec builds the whole list before its length can be
  checked, so 10 MiB of `1,1,1,…` would become millions of objects. The body's commas bound the
  number of items; only when that bound is above the limit are the items counted exactly, by a
  scan that skips strings and stops at the limit.
- **Lone surrogates** (`"\\ud800"`): JSON allows the escape, UTF-8 cannot hold it, and msgspec
  refuses the whole document. Each lone escape is replaced by a same-length placeholder, the
  envelope is decoded again, and only the items that held one are refused.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

import msgspec

from appliance import wire
from appliance.errors import BadRequest

# A string (escapes included) or one structural character; strings are matched whole, so commas
# and brackets inside them are never counted.
_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{},]')
# A run of backslashes ending in `u` and four hex digits of a surrogate (U+D800-U+DFFF). An odd
# run is an escape; an even one is escaped backslashes followed by the text "uD8..".
_SURROGATE_ESCAPE = re.compile(rb"(\\+)u([dD][0-9a-fA-F]{3})")
_PLACEHOLDER = rb"\ufffd"
# Below max_events * this many commas the body is decoded before its items are counted: at most
# ~64 small objects per allowed event, and almost every real batch is below it.
_COMMAS_PER_EVENT = 64
LONE_SURROGATE_ERROR = "strings must be valid Unicode (lone surrogate escape)"


@dataclass(slots=True)
class SplitBody:
    """A batch body split into items; `refused` maps item index to the reason it is refused."""

    items: list[msgspec.Raw]
    refused: dict[int, str] = field(default_factory=dict)


def split_batch(body: bytes, max_events: int) -> SplitBody:
    """The raw items of a batch body; raises BadRequest for envelope problems."""
    _check_item_count(body, max_events)
    try:
        return SplitBody(_check_count(_decode(body), max_events))
    except msgspec.DecodeError as exc:
        lone = lone_surrogates(body)
        if not lone:
            raise BadRequest(f"body: not valid JSON ({exc})") from None
        original = exc
    repaired = bytearray(body)
    for offset in lone:
        repaired[offset : offset + 6] = _PLACEHOLDER
    try:
        items = _check_count(_decode(bytes(repaired)), max_events)
    except msgspec.DecodeError:
        raise BadRequest(f"body: not valid JSON ({original})") from None
    owners = _owners(bytes(repaired), items, lone)
    if None in owners:  # an escape in the envelope itself, outside every item
        raise BadRequest(f"body: {LONE_SURROGATE_ERROR}")
    return SplitBody(items, {index: LONE_SURROGATE_ERROR for index in owners if index is not None})


def lone_surrogates(data: bytes | msgspec.Raw) -> list[int]:
    """Offsets of `\\uD800`-`\\uDFFF` escapes that are not half of a valid surrogate pair."""
    raw = bytes(data)
    if b"\\u" not in raw and b"\\U" not in raw:
        return []
    lone: list[int] = []
    pending_high: int | None = None  # offset of a high surrogate escape waiting for its low half
    for match in _SURROGATE_ESCAPE.finditer(raw):
        backslashes = match.group(1)
        if len(backslashes) % 2 == 0:
            continue  # escaped backslashes, then plain text
        offset = match.start(2) - 2  # the escape's own backslash
        code = int(match.group(2), 16)
        if pending_high is not None:
            if code >= 0xDC00 and offset == pending_high + 6:
                pending_high = None
                continue
            lone.append(pending_high)
            pending_high = None
        if code < 0xDC00:
            pending_high = offset
        else:
            lone.append(offset)
    if pending_high is not None:
        lone.append(pending_high)
    return lone


def _decode(body: bytes) -> list[msgspec.Raw]:
    try:
        envelope = wire.envelope_decoder.decode(body)
    except msgspec.ValidationError as exc:
        text, _, where = str(exc).partition(" - at `$")
        key = where.rstrip("`").lstrip(".") or "body"
        raise BadRequest(f"{key}: {text[:1].lower()}{text[1:]}") from None
    except UnicodeDecodeError:
        raise BadRequest("body: strings must be valid UTF-8") from None
    except RecursionError:
        raise BadRequest("body: nested too deeply") from None
    if not envelope.events:
        raise BadRequest("events: must hold at least one event")
    return envelope.events


def _check_count(items: list[msgspec.Raw], max_events: int) -> list[msgspec.Raw]:
    if len(items) > max_events:
        raise BadRequest(f"events: at most {max_events} events per request, got {len(items)}")
    return items


def _check_item_count(body: bytes, max_events: int) -> None:
    """Refuse more than `max_events` items without building them (see the module docstring)."""
    if body.count(b",") < max_events * _COMMAS_PER_EVENT:
        # items <= commas + 1: at most this many small objects before the exact check after decoding
        return
    depth = 0
    items = 0
    for token in _TOKENS.finditer(body):
        char = token.group()
        if char in (b"[", b"{"):
            depth += 1
            if depth == 2 and char == b"[":
                items = 1  # the events array (the only array directly in the envelope that matters)
        elif char in (b"]", b"}"):
            depth -= 1
        elif char == b"," and depth == 2:
            items += 1
            if items > max_events:
                raise BadRequest(f"events: at most {max_events} events per request")


def _owners(body: bytes, items: list[msgspec.Raw], offsets: list[int]) -> list[int | None]:
    """For each offset in `body`, the index of the item whose bytes span it (None: outside all)."""
    spans: list[tuple[int, int]] = []
    position = 0
    for item in items:
        raw = bytes(item)
        # Items appear in order, separated only by commas and whitespace, which cannot start a
        # JSON value: the first match from the previous item's end is this item.
        start = body.find(raw, position)
        position = start + len(raw)
        spans.append((start, position))
    starts = [start for start, _ in spans]
    owners: list[int | None] = []
    for offset in offsets:
        index = bisect.bisect_right(starts, offset) - 1
        owners.append(index if index >= 0 and offset < spans[index][1] else None)
    return owners

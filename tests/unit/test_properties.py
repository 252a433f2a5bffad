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


# ---- limits (issue: amplification) ------------------------------------------------------------

import msgspec  # noqa: E402
import pytest  # noqa: E402

from appliance.properties import PropertiesInvalid, PropertyLimits, decode_properties  # noqa: E402

LIMITS = PropertyLimits(max_bytes=4096, max_keys=50, max_array_items=20, max_string_chars=100)


def test_raw_properties_over_the_byte_limit_are_refused_before_decoding() -> None:
    raw = msgspec.Raw(b'{"a":[' + b",".join([b"0"] * 3000) + b"]}")
    with pytest.raises(PropertiesInvalid, match="larger than 4096 bytes"):
        decode_properties(raw, LIMITS)


def test_within_limits_is_flattened_unchanged() -> None:
    properties = decode_properties(msgspec.Raw(b'{"a":[1,2,3],"b":{"c":"d"}}'), LIMITS)
    assert flatten_properties(properties, LIMITS) == {"a.0": "1", "a.1": "2", "a.2": "3", "b.c": "d"}


_LIMIT_CASES = [
    ({"a": list(range(21))}, "a: more than 20 array items"),
    ({f"k{n}": n for n in range(51)}, "more than 50 keys"),
    ({"a": [{"b": n} for n in range(20)], "c": [[1, 2]] * 10}, "more than 50 keys"),  # every level counts
    ({"a": "x" * 101}, "a: string longer than 100 characters"),
    ({"k" * 101: 1}, "key longer than 100 characters"),
    # Long names repeated in every dotted key: small as JSON, large once flattened.
    ({"n" * 100: {"m" * 100: list(range(20))}}, "more than 4096 bytes once flattened"),
]


@pytest.mark.parametrize(("properties", "message"), _LIMIT_CASES)
def test_limits_name_what_was_passed(properties: dict[str, object], message: str) -> None:
    with pytest.raises(PropertiesInvalid, match=message):
        flatten_properties(properties, LIMITS)


def test_exactly_at_the_limits_is_allowed() -> None:
    flat = flatten_properties({"a": ["x" * 100] * 20}, PropertyLimits(max_keys=21, max_array_items=20,
                                                                      max_string_chars=100))
    assert len(flat) == 20


def test_properties_must_be_an_object() -> None:
    with pytest.raises(PropertiesInvalid, match="expected `object`, got `array`"):
        decode_properties(msgspec.Raw(b"[1]"), LIMITS)


# ---- the walk against its definition ------------------------------------------------------------

from typing import Any  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from appliance.properties import CONSUMED_PROPERTIES  # noqa: E402

_LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
_KEYS = st.sampled_from(["a", "b", "__path", "__timestamp", "x.y", ""]) | st.text(max_size=3)
_DOCUMENTS = st.dictionaries(_KEYS, st.recursive(
    _LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4), max_leaves=20),
    max_size=6)


def _defined(value: Any, key: str, out: dict[str, str]) -> None:
    """docs/contract.md §6.3 read literally: dotted keys, `key.N` for list items, null and "" dropped."""
    if isinstance(value, dict):
        for child_key, child in value.items():
            _defined(child, f"{key}.{child_key}" if key else child_key, out)
    elif isinstance(value, list):
        for position, child in enumerate(value):
            _defined(child, f"{key}.{position}", out)
    elif isinstance(value, bool):
        out[key] = "true" if value else "false"
    elif value is not None and value != "":
        out[key] = str(value)


@settings(max_examples=300, deadline=None)
@given(_DOCUMENTS)
def test_the_walk_is_the_definition_within_the_limits(document: dict[str, Any]) -> None:
    expected: dict[str, str] = {}
    _defined({key: value for key, value in document.items() if key not in CONSUMED_PROPERTIES}, "", expected)
    assert flatten_properties(document) == expected


# ---- the per-request memo changes nothing --------------------------------------------------------

import json  # noqa: E402

from appliance.properties import FlattenMemo, decode_and_flatten  # noqa: E402

_FINITE_LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=6)
_VALUES = st.recursive(_FINITE_LEAVES, lambda inner: st.lists(inner, max_size=5)
                       | st.dictionaries(_KEYS, inner, max_size=5), max_leaves=25)
# Tight enough that many documents break a rule, alone or only together with what they share.
_TIGHT_TOTALS = PropertyLimits(max_bytes=60, max_keys=8)
_TIGHT_ITEMS = PropertyLimits(max_array_items=2, max_string_chars=3)


def _outcome(raw: bytes, limits: PropertyLimits, memo: FlattenMemo | None) -> object:
    try:
        properties, flat = decode_and_flatten(raw, limits, memo)
    except Exception as exc:  # the same error, message and all, is the point
        return type(exc), str(exc)
    return properties, list(flat.items())  # the order of the flat keys too


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(_KEYS, _VALUES, max_size=6), min_size=1, max_size=4),
       st.sampled_from([PropertyLimits(), _TIGHT_TOTALS, _TIGHT_ITEMS]), st.sampled_from([None, 1]))
def test_the_memo_gives_what_the_plain_walk_gives(documents: list[dict[str, Any]], limits: PropertyLimits,
                                                  indent: int | None) -> None:
    # As a batch repeats its context: every document twice, and one made of the others' values.
    mixed = {key: value for document in documents for key, value in document.items()}
    memo = FlattenMemo()
    for document in [*documents, mixed, *documents]:
        raw = json.dumps(document, indent=indent).encode()  # with indent, whitespace before values
        assert _outcome(raw, limits, memo) == _outcome(raw, limits, None)


@pytest.mark.parametrize(("limits", "message"), [(PropertyLimits(max_keys=4), "more than 4 keys"),
                                                 (PropertyLimits(max_bytes=100), "more than 100 bytes once flattened")])
def test_a_reused_object_still_counts_toward_the_events_limits(limits: PropertyLimits, message: str) -> None:
    memo = FlattenMemo()
    # With its key: 4 keys, 95 bytes once flattened (66 as JSON); the second event adds 1 and 13.
    context = {"context_of_the_device_sdk": {"app": "shop", "os": "ios", "tz": "cet"}}
    alone = decode_and_flatten(json.dumps(context, separators=(",", ":")).encode(), limits, memo)
    assert alone[1]["context_of_the_device_sdk.tz"] == "cet"
    crowded = json.dumps({"screen": "Catalog", **context}, separators=(",", ":")).encode()
    with pytest.raises(PropertiesInvalid, match=message):
        decode_and_flatten(crowded, limits, memo)


@pytest.mark.parametrize(("properties", "message"), _LIMIT_CASES)
def test_limits_name_what_was_passed_through_the_memo(properties: dict[str, object], message: str) -> None:
    memo, raw = FlattenMemo(), msgspec.json.encode(properties)
    for _ in range(2):  # walked, then found in the memo
        with pytest.raises(PropertiesInvalid, match=message):
            decode_and_flatten(raw, LIMITS, memo)


def test_text_the_memo_cannot_read_gets_the_plain_paths_error() -> None:
    memo = FlattenMemo()
    for raw in (b'{"a":{"b":"\xff"}}', b'{"a":"\xff"}', b'{"\xff":1}', b"[1]", b'{"a":' + b"[" * 40 + b"]" * 40 + b"}"):
        assert _outcome(raw, LIMITS, memo) == _outcome(raw, LIMITS, None)
        assert isinstance(_outcome(raw, LIMITS, memo)[0], type)  # an error, not a result


def test_the_memo_starts_over_once_it_holds_its_bound_of_json() -> None:
    memo = FlattenMemo(max_text_bytes=200)
    documents = [{"context": {"device": f"kiosk-{n:03d}", "app": "till"}} for n in range(12)]  # ~45 bytes each
    for document in documents:
        raw = json.dumps(document).encode()
        assert decode_and_flatten(raw, LIMITS, memo) == decode_and_flatten(raw, LIMITS, None)
        held = sum(len(key) + len(text) for key, text in memo.values)
        assert 0 < held <= 200
    assert len(memo.values) < len(documents)  # it started over at least once
    # The last document is held and reused: the same decoded object comes back.
    last = json.dumps(documents[-1]).encode()
    assert decode_and_flatten(last, LIMITS, memo)[0]["context"] is decode_and_flatten(last, LIMITS, memo)[0]["context"]


def test_a_value_larger_than_the_memos_bound_is_walked_but_not_held() -> None:
    memo = FlattenMemo(max_text_bytes=50)
    raw = json.dumps({"context": {"note": "x" * 100}}).encode()
    assert decode_and_flatten(raw, LIMITS, memo) == decode_and_flatten(raw, LIMITS, None)
    assert memo.values == {}

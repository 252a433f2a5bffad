"""Splitting a batch body into items: item counts and lone surrogates (docs/contract.md §3.4, §9)."""

from __future__ import annotations

import json

import pytest

from appliance.envelope import LONE_SURROGATE_ERROR, lone_surrogates, split_batch
from appliance.errors import BadRequest


def _body(*items: str) -> bytes:
    return ('{"events":[' + ",".join(items) + "]}").encode()


GOOD = '{"type":"track","payload":{"name":"a"}}'
LONE = '{"type":"track","payload":{"name":"b","properties":{"x":"\\ud800"}}}'


def test_items_come_back_raw() -> None:
    split = split_batch(_body(GOOD, GOOD), 10)
    assert [bytes(item) for item in split.items] == [GOOD.encode(), GOOD.encode()]
    assert split.refused == {}


def test_a_lone_surrogate_refuses_only_its_item() -> None:
    split = split_batch(_body(GOOD, LONE, GOOD, LONE), 10)
    assert len(split.items) == 4
    assert split.refused == {1: LONE_SURROGATE_ERROR, 3: LONE_SURROGATE_ERROR}
    assert bytes(split.items[2]) == GOOD.encode()


@pytest.mark.parametrize(
    ("text", "lone"),
    [
        ('"\\ud83d\\ude00"', []),  # a valid pair (an emoji), as Python's json.dumps writes it
        ('"\\ud800"', [1]),
        ('"\\udc00"', [1]),
        ('"\\ud800\\ud800\\udc00"', [1]),  # a high half, then a valid pair
        ('"\\\\ud800"', []),  # an escaped backslash followed by the text "ud800"
        ('"\\\\\\ud800"', [3]),  # an escaped backslash, then the escape
        ('"\\uD800x"', [1]),
    ],
)
def test_lone_surrogates_found_exactly(text: str, lone: list[int]) -> None:
    assert lone_surrogates(text.encode()) == lone


def test_too_many_items_refused_without_building_them() -> None:
    body = _body(*["1"] * 300_000)
    with pytest.raises(BadRequest, match="at most 2000 events"):
        split_batch(body, 2000)


def test_commas_inside_strings_do_not_count_as_items() -> None:
    item = json.dumps({"type": "replay", "payload": {"payload": "," * 200_000}})
    split = split_batch(_body(item, item), 2000)
    assert len(split.items) == 2


@pytest.mark.parametrize("body", [b"not json", b'{"events": []}', b'{"events": {}}', b'{"x": 1}',
                                  b'{"events": [1], "k": "\\ud800"}'])
def test_envelope_problems_are_bad_requests(body: bytes) -> None:
    with pytest.raises(BadRequest):
        split_batch(body, 10)

"""The session context a new session writes into its profile (storage.profiles), as SQL text.

`SESSION_CONTEXT_JSON` builds the JSON object as text, each value quoted by DuckDB's `to_json`;
it must give exactly what DuckDB's `to_json` of a map of the non-empty fields gives (the
expression it replaced), whatever the values hold: quotes, backslashes, control characters,
non-ASCII text, nulls, empty strings and numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.profiles import SESSION_CONTEXT_COLUMNS, SESSION_CONTEXT_JSON

_NUMBERS = ("longitude", "latitude")
# The definition: a map of the non-empty fields, in the columns' order, as JSON.
_MAP_JSON = "to_json(map_from_entries(list_filter([{}], lambda p: p.v <> '')))::VARCHAR".format(", ".join(
    f"{{'k': '{name}', 'v': coalesce({name}::VARCHAR, '')}}" for name in SESSION_CONTEXT_COLUMNS))

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["", "/", '"quoted"', "back\\slash", "tab\there", "line\nbreak", "\x00\x1f\x7f", "ü€𝄞", "</script>"])


@pytest.fixture(scope="module")
def connection() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as connection:
        yield connection


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    return {name: draw(st.none() | st.floats(-180, 180, width=32) if name in _NUMBERS else st.none() | _TEXT)
            for name in SESSION_CONTEXT_COLUMNS}


@settings(max_examples=200, deadline=None)
@given(st.lists(events(), min_size=1, max_size=10))
def test_the_context_as_text_equals_the_map_as_json(connection: duckdb.DuckDBPyConnection,
                                                    rows: list[dict[str, Any]]) -> None:
    schema = pa.schema([(name, pa.float32() if name in _NUMBERS else pa.string()) for name in SESSION_CONTEXT_COLUMNS])
    connection.register("starts", pa.Table.from_pylist(rows, schema=schema))
    try:
        found = connection.execute(f"SELECT {SESSION_CONTEXT_JSON}, {_MAP_JSON} FROM starts").fetchall()
    finally:
        connection.unregister("starts")
    assert [text for text, _ in found] == [expected for _, expected in found]


def test_a_context_without_fields_is_an_empty_object(connection: duckdb.DuckDBPyConnection) -> None:
    empty = ", ".join(f"NULL::VARCHAR AS {name}" for name in SESSION_CONTEXT_COLUMNS)
    row = connection.execute(f"SELECT {SESSION_CONTEXT_JSON} FROM (SELECT {empty})").fetchone()
    assert row == ("{}",)

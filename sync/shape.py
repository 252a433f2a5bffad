"""One batch's canonical rows → the block an upstream table takes (docs/contract.md §10).

Input: a batch read by `storage.ledger.read_batch` (Arrow, `seq` first, OpenPanel's column
names) and the table's `TablePlan`. Output: the block to insert — exactly the upstream's columns
that the gateway knows, in the upstream's order, `inserted_at` set to the upstream's insert time
when the table has it — plus the rows whose values the upstream's types cannot hold (a number
past a narrower integer type, text longer than a FixedString), refused before sending with a
message naming column, value and type. Columns the gateway does not know are left to the
upstream's defaults. Type conversion itself is ClickHouse's (its Arrow reader casts).

`properties` travels as the local JSON text: the upstream parses it into its map and adds the
gateway's `__gateway` (the gateway's name wins over a client's own), so the block says how the
upstream reads each column (`read_as`) and which columns it computes from what it read
(`computed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from storage.ledger import Refused
from sync.clickhouse import EncodedRows, Upstream, quote_string
from sync.upstream_tables import INSERTED_AT, KeyKind, TablePlan, fixed_string_length, integer_bounds


@dataclass(frozen=True, slots=True)
class Block:
    rows: pa.Table  # the upstream's columns only
    seqs: list[int]  # the local seq of each row, for the quarantine
    read_as: dict[str, str] = field(default_factory=dict)  # column → the type the upstream reads it as
    computed: dict[str, str] = field(default_factory=dict)  # column → ClickHouse expression over those
    encoded: EncodedRows | None = None  # `rows` ready to send, when encoded ahead of the insert

    def part(self, rows: pa.Table, seqs: list[int]) -> Block:
        """Some of this block's rows, read and computed the same way."""
        return Block(rows, seqs, self.read_as, self.computed)

    def encoded_by(self, upstream: Upstream) -> Block:
        """This block with its rows encoded as `upstream` sends them, to do before its turn. A
        block without computed columns goes through the client's own insert, which encodes it."""
        if not self.computed or not self.seqs:
            return self
        return Block(self.rows, self.seqs, self.read_as, self.computed, upstream.encode(self.rows))

    def close(self) -> None:
        """Drop the encoded rows (their temporary file), once sent or given up."""
        if self.encoded is not None:
            self.encoded.close()


def fit(batch: pa.Table, plan: TablePlan, inserted_at_ms: int | None, gateway_id: str) -> tuple[Block, list[Refused]]:
    """The block to send for `batch`, and the rows refused because their values cannot fit."""
    keep = pa.array([True] * batch.num_rows, pa.bool_())
    problems: dict[int, str] = {}
    for name, kind in plan.columns.items():
        column = batch.column(name)
        bad = _does_not_fit(column, kind)
        if bad is None or not pc.any(bad).as_py():
            continue
        for index in pc.indices_nonzero(bad).to_pylist():
            problems.setdefault(index, f"{plan.table}.{name}: {column[index].as_py()!r} does not fit {kind}")
        keep = pc.and_(keep, pc.invert(bad))
    refused = [Refused(int(batch.column("seq")[index].as_py()), message, _row(batch, index))
               for index, message in sorted(problems.items())]
    kept = batch.filter(keep) if problems else batch
    rows = kept.select(list(plan.columns))
    read_as = dict(plan.columns)
    if plan.set_inserted_at and inserted_at_ms is not None:
        rows = rows.append_column(INSERTED_AT, pa.array([inserted_at_ms] * rows.num_rows, pa.int64())
                                  .cast(pa.timestamp("ms")))
        read_as[INSERTED_AT] = "DateTime64(3)"  # cast to the upstream's own time type on insert
    computed = {}
    if "properties" in read_as:
        read_as["properties"] = "String"
        computed["properties"] = ("mapUpdate(JSONExtract(properties, 'Map(String, String)'), "
                                  f"map('__gateway', {quote_string(gateway_id)}))")
    return Block(rows, kept.column("seq").to_pylist(), read_as, computed), refused


def _does_not_fit(column: pa.ChunkedArray, kind: str) -> pa.Array | None:
    if pa.types.is_integer(column.type):
        bounds = integer_bounds(kind)
        if bounds is None:
            return None
        low, high = bounds
        bits = column.type.bit_width
        own_low, own_high = ((-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if pa.types.is_signed_integer(column.type)
                             else (0, 2**bits - 1))
        checks = ([pc.less(column, pa.scalar(low, column.type))] if low > own_low else []) + (
            [pc.greater(column, pa.scalar(high, column.type))] if high < own_high else [])
        if not checks:
            return None
        outside = checks[0] if len(checks) == 1 else pc.or_(checks[0], checks[1])
        return pc.fill_null(outside, False)
    if pa.types.is_string(column.type):
        length = fixed_string_length(kind)
        if length is None:
            return None
        return pc.fill_null(pc.greater(pc.binary_length(column), length), False)
    return None


def _row(batch: pa.Table, index: int) -> dict[str, Any]:
    row = batch.slice(index, 1).to_pylist()[0]
    row.pop("seq", None)
    return dict(row)


def row_keys(rows: pa.Table, keys: list[tuple[str, KeyKind]]) -> list[tuple[Any, ...]]:
    """Each row's key, as `Upstream.existing_keys` returns keys (text, integers, epoch ms)."""
    columns = []
    for name, kind in keys:
        column = rows.column(name)
        if kind == "time":
            column = column.cast(pa.timestamp("ms")).cast(pa.int64())
        elif kind == "text":
            column = column.cast(pa.string())
        columns.append(column.to_pylist())
    return list(zip(*columns, strict=True))


def key_kinds(schema: pa.Schema, names: tuple[str, ...]) -> list[tuple[str, KeyKind]]:
    """How each key column compares: as text, integer, or time."""
    kinds: list[tuple[str, KeyKind]] = []
    for name in names:
        kind = schema.field(name).type
        kinds.append((name, "time" if pa.types.is_timestamp(kind) else
                      "integer" if pa.types.is_integer(kind) or pa.types.is_boolean(kind) else "text"))
    return kinds

"""The upstream's tables as they are (docs/contract.md §10 "the upstream as it is"), and how the gateway fits them.

Input: rows of ClickHouse's `system.tables` and `system.columns` for the upstream database.
Output: per table its insertable columns and types, whether an insert token deduplicates there
(and why), and whether inserts go through a Distributed table; and, against the gateway's
canonical rows (`storage.upstream_rows`), a plan of which columns to send — or the problems
that make a table impossible to fill. Pure functions; `sync.clickhouse` does the I/O.

OpenPanel's own tables (Openpanel-dev/openpanel, packages/db/code-migrations) are the usual
case: single-node MergeTree tables without `non_replicated_deduplication_window`, or, clustered,
Distributed tables over `*_replicated` ReplicatedMergeTree ones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

KeyKind = Literal["text", "integer", "time"]

# Columns the server computes itself: never sent.
_NOT_INSERTABLE = frozenset({"MATERIALIZED", "ALIAS", "EPHEMERAL"})
# The column OpenPanel's export job reads as its cursor: set to the time of the insert.
INSERTED_AT = "inserted_at"
_DISTRIBUTED_TARGET = re.compile(r"^Distributed\(\s*'?[^,']*'?\s*,\s*[^,]+,\s*'?`?([\w.]+?)`?'?\s*[,)]")
_SETTING = r"\b{}\s*=\s*(\d+)"
# ReplicatedMergeTree keeps the last 1000 tokens (10000 in newer releases) unless told otherwise.
_REPLICATED_DEFAULT_WINDOW = 1000


@dataclass(frozen=True, slots=True)
class UpstreamTable:
    name: str
    engine: str
    columns: dict[str, str]  # insertable column → ClickHouse type, in the table's order
    dedup_window: int  # >0: a repeated insert token is dropped
    local_table: str  # the table that stores the rows (the one under a Distributed table)
    distributed: bool = False

    @property
    def can_set_dedup_window(self) -> bool:
        """A single-node MergeTree table, whose window `ALTER TABLE … MODIFY SETTING` can set."""
        return not self.distributed and self.engine.endswith("MergeTree") and not self.engine.startswith(
            ("Replicated", "Shared"))


def describe_tables(tables: Sequence[Sequence[Any]], columns: Sequence[Sequence[Any]]) -> dict[str, UpstreamTable]:
    """Tables from rows `(name, engine, engine_full, create_table_query)` and columns from rows
    `(table, name, type, default_kind)` of ClickHouse's system tables."""
    by_table: dict[str, dict[str, str]] = {}
    for table, name, kind, default_kind in columns:
        if default_kind not in _NOT_INSERTABLE:
            by_table.setdefault(table, {})[name] = kind
    engines = {row[0]: (row[1], row[2], row[3]) for row in tables}
    described = {}
    for name, (engine, engine_full, create_query) in engines.items():
        local, distributed = name, False
        if engine == "Distributed":
            match = _DISTRIBUTED_TARGET.match(engine_full)
            if match:
                local, distributed = match.group(1).rpartition(".")[2], True
        local_engine, _, local_query = engines.get(local, (engine, engine_full, create_query))
        described[name] = UpstreamTable(name, local_engine, by_table.get(name, {}),
                                        _dedup_window(local_engine, local_query), local, distributed)
    return described


def _dedup_window(engine: str, create_query: str) -> int:
    if engine.startswith(("Replicated", "Shared")):
        setting = re.search(_SETTING.format("replicated_deduplication_window"), create_query)
        return int(setting.group(1)) if setting else _REPLICATED_DEFAULT_WINDOW
    if engine.endswith("MergeTree"):
        setting = re.search(_SETTING.format("non_replicated_deduplication_window"), create_query)
        return int(setting.group(1)) if setting else 0
    return 0


# ---- fitting the gateway's rows to the upstream's columns -----------------------------------------

@dataclass(frozen=True, slots=True)
class TablePlan:
    """What to send to one upstream table, or why nothing can be."""
    table: str
    columns: dict[str, str] = field(default_factory=dict)  # sent column → upstream type
    set_inserted_at: bool = False
    problems: tuple[str, ...] = ()  # not empty: the table cannot take the gateway's rows
    unsent: tuple[str, ...] = ()  # columns the gateway knows but the upstream lacks


def plan_table(table: str, canonical: pa.Schema, upstream: UpstreamTable | None, required: tuple[str, ...],
               database: str) -> TablePlan:
    """Which of the gateway's columns go to `upstream`, and whether its types can take them."""
    where = f"{database}.{table}"
    if upstream is None:
        return TablePlan(table, problems=(f"{where}: table missing (run `python -m appliance upstream-init`)",))
    problems = [f"{where}.{name}: missing column, which the gateway needs" for name in required
                if name not in upstream.columns]
    columns = {}
    for name, kind in upstream.columns.items():
        if name not in canonical.names:
            continue
        if not compatible(canonical.field(name).type, kind):
            problems.append(f"{where}.{name}: type {kind} cannot take the gateway's {canonical.field(name).type}")
        columns[name] = kind
    unsent = tuple(name for name in canonical.names if name not in upstream.columns)
    inserted_at = INSERTED_AT in upstream.columns and INSERTED_AT not in canonical.names
    if inserted_at and not _base(upstream.columns[INSERTED_AT]).startswith("DateTime"):
        problems.append(f"{where}.{INSERTED_AT}: type {upstream.columns[INSERTED_AT]} is not a time")
    return TablePlan(table, columns, inserted_at, tuple(problems), unsent)


def _base(kind: str) -> str:
    """`Nullable(LowCardinality(FixedString(2)))` → `FixedString(2)`."""
    while True:
        match = re.fullmatch(r"(?:Nullable|LowCardinality)\((.*)\)", kind)
        if not match:
            return kind
        kind = match.group(1)


_INTEGER = re.compile(r"U?Int(8|16|32|64|128|256)")
_NUMBER = re.compile(r"U?Int\d+|Float(32|64)|Decimal.*|Bool")
_TEXT = re.compile(r"String|FixedString\(\d+\)|UUID|Enum(8|16)?\(.*\)")


def compatible(ours: pa.DataType, kind: str) -> bool:
    """Whether a ClickHouse column of type `kind` can hold the gateway's values of Arrow type `ours`."""
    base = _base(kind)
    if pa.types.is_string(ours):
        return bool(_TEXT.fullmatch(base))
    if pa.types.is_timestamp(ours):
        return base.startswith("DateTime")
    if pa.types.is_boolean(ours) or pa.types.is_integer(ours) or pa.types.is_floating(ours):
        return bool(_NUMBER.fullmatch(base))
    if pa.types.is_list(ours):
        inner = re.fullmatch(r"Array\((.*)\)", base)
        return inner is not None and compatible(ours.value_type, inner.group(1))
    if pa.types.is_map(ours):
        inner = re.fullmatch(r"Map\((.*)\)", base)
        if inner is None:
            return False
        key, _, value = _split_pair(inner.group(1))
        return compatible(ours.key_type, key) and compatible(ours.item_type, value)
    return False


def _split_pair(text: str) -> tuple[str, str, str]:
    depth = 0
    for position, char in enumerate(text):
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            return text[:position].strip(), ",", text[position + 1:].strip()
    return text, "", ""


def integer_bounds(kind: str) -> tuple[int, int] | None:
    """The range of an integer ClickHouse type (`UInt16` → 0..65535), else None."""
    base = _base(kind)
    match = _INTEGER.fullmatch(base)
    if not match:
        return None
    bits = int(match.group(1))
    return (0, 2**bits - 1) if base.startswith("U") else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def fixed_string_length(kind: str) -> int | None:
    match = re.fullmatch(r"FixedString\((\d+)\)", _base(kind))
    return int(match.group(1)) if match else None

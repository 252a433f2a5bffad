"""Reading the upstream's tables as they are, and fitting the gateway's rows to them (docs/contract.md §10)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from storage.ledger import Refused
from storage.upstream_rows import REQUIRED, canonical_schema
from sync.shape import fit, key_kinds, row_keys
from sync.upstream_tables import compatible, describe_tables, plan_table

_EVENTS_REPLICATED = (
    "CREATE TABLE openpanel.events_replicated (`id` UUID) ENGINE = ReplicatedMergeTree('/clickhouse/{installation}/"
    "{cluster}/tables/{shard}/openpanel/v1/{table}', '{replica}') ORDER BY id SETTINGS index_granularity = 8192")


def test_single_node_tables_without_a_window_do_not_deduplicate() -> None:
    tables = describe_tables(
        [("events", "MergeTree", "MergeTree ORDER BY id SETTINGS index_granularity = 8192",
          "CREATE TABLE openpanel.events (`id` UUID) ENGINE = MergeTree ORDER BY id SETTINGS index_granularity = 8192"),
         ("groups", "ReplacingMergeTree", "ReplacingMergeTree(version, deleted) ORDER BY id SETTINGS "
          "non_replicated_deduplication_window = 100000", "CREATE TABLE openpanel.groups (`id` String) ENGINE = "
          "ReplacingMergeTree(version, deleted) ORDER BY id SETTINGS non_replicated_deduplication_window = 100000")],
        [("events", "id", "UUID", ""), ("events", "ends", "String", "MATERIALIZED"), ("groups", "id", "String", "")])
    assert tables["events"].dedup_window == 0 and tables["events"].can_set_dedup_window
    assert tables["events"].columns == {"id": "UUID"}  # a MATERIALIZED column is never sent
    assert tables["groups"].dedup_window == 100_000


def test_openpanels_clustered_layout_inserts_through_distributed_into_replicated() -> None:
    tables = describe_tables(
        [("events_replicated", "ReplicatedMergeTree", "ReplicatedMergeTree('/x', '{replica}') ORDER BY id",
          _EVENTS_REPLICATED),
         ("events", "Distributed", "Distributed('{cluster}', 'openpanel', 'events_replicated', "
          "cityHash64(project_id, toString(toStartOfHour(created_at))))",
          "CREATE TABLE openpanel.events AS openpanel.events_replicated ENGINE = Distributed(...)")],
        [("events", "id", "UUID", ""), ("events_replicated", "id", "UUID", "")])
    events = tables["events"]
    assert events.distributed and events.local_table == "events_replicated"
    assert events.dedup_window > 0  # replicated tables keep their tokens by default
    assert not events.can_set_dedup_window


def test_a_replicated_table_told_to_forget_tokens_does_not_deduplicate() -> None:
    query = _EVENTS_REPLICATED.replace("index_granularity = 8192", "replicated_deduplication_window = 0")
    tables = describe_tables([("events", "ReplicatedMergeTree", "", query)], [("events", "id", "UUID", "")])
    assert tables["events"].dedup_window == 0 and not tables["events"].can_set_dedup_window


@pytest.mark.parametrize(("ours", "kind", "fits"), [
    (pa.string(), "LowCardinality(FixedString(2))", True),
    (pa.string(), "UUID", True),
    (pa.string(), "Int32", False),
    (pa.timestamp("us"), "DateTime", True),
    (pa.timestamp("us"), "Nullable(DateTime64(3, 'UTC'))", True),
    (pa.timestamp("us"), "Date", False),
    (pa.uint32(), "UInt16", True),  # by type; each value is checked when sent
    (pa.bool_(), "UInt8", True),
    (pa.float32(), "Nullable(Float32)", True),
    (pa.list_(pa.string()), "Array(LowCardinality(String))", True),
    (pa.list_(pa.string()), "String", False),
    (pa.map_(pa.string(), pa.string()), "Map(LowCardinality(String), String)", True),
    (pa.map_(pa.string(), pa.string()), "Map(String, UInt64)", False),
    (pa.map_(pa.string(), pa.string()), "String", False),
])
def test_type_compatibility(ours: pa.DataType, kind: str, fits: bool) -> None:
    assert compatible(ours, kind) is fits


def _replay_plan(events_count_type: str = "UInt16", extra: dict[str, str] | None = None) -> object:
    columns = {"project_id": "String", "session_id": "String", "chunk_index": "UInt16", "started_at": "DateTime64(3)",
               "ended_at": "DateTime64(3)", "events_count": events_count_type, "is_full_snapshot": "Bool",
               "payload": "String", **(extra or {})}
    upstream = describe_tables([("session_replay_chunks", "MergeTree", "", "")],
                               [("session_replay_chunks", name, kind, "") for name, kind in columns.items()])
    return plan_table("session_replay_chunks", canonical_schema("session_replay_chunks"),
                      upstream["session_replay_chunks"], REQUIRED["session_replay_chunks"], "op")


def _replays(*counts: int) -> pa.Table:
    n = len(counts)
    return pa.table({
        "seq": pa.array(range(1, n + 1), pa.int64()), "project_id": ["p"] * n, "session_id": ["s"] * n,
        "chunk_index": pa.array(range(n), pa.uint16()),
        "started_at": pa.array([1_780_920_000_000_000] * n, pa.timestamp("us")),
        "ended_at": pa.array([1_780_920_001_000_000] * n, pa.timestamp("us")),
        "events_count": pa.array(counts, pa.uint32()), "is_full_snapshot": [True] * n, "payload": ["{}"] * n,
    })


def test_values_past_a_narrower_upstream_type_are_refused_not_wrapped() -> None:
    block, refused = fit(_replays(3, 70_000, 65_535), _replay_plan(), None, "site-01")
    assert block.seqs == [1, 3] and block.rows.column("events_count").to_pylist() == [3, 65_535]
    assert refused == [Refused(2, "session_replay_chunks.events_count: 70000 does not fit UInt16",
                               refused[0].row)]
    assert refused[0].row["events_count"] == 70_000 and "seq" not in refused[0].row


def test_inserted_at_is_set_and_unknown_upstream_columns_are_left_to_their_defaults() -> None:
    plan = _replay_plan("UInt32", {"inserted_at": "DateTime64(3)", "region_hint": "String"})
    block, refused = fit(_replays(1, 2), plan, inserted_at_ms=1_800_000_000_123, gateway_id="site-01")
    assert refused == []
    assert block.rows.column_names == ["project_id", "session_id", "chunk_index", "started_at", "ended_at",
                                       "events_count", "is_full_snapshot", "payload", "inserted_at"]
    assert block.rows.column("inserted_at").cast(pa.int64()).to_pylist() == [1_800_000_000_123] * 2


def test_a_table_missing_a_needed_column_or_of_the_wrong_type_is_a_problem() -> None:
    upstream = describe_tables([("groups", "MergeTree", "", "")],
                               [("groups", "id", "String", ""), ("groups", "name", "Array(String)", "")])
    plan = plan_table("groups", canonical_schema("groups"), upstream["groups"], REQUIRED["groups"], "op")
    assert plan.problems == ("op.groups.project_id: missing column, which the gateway needs",
                             "op.groups.version: missing column, which the gateway needs",
                             "op.groups.name: type Array(String) cannot take the gateway's string")
    missing = plan_table("groups", canonical_schema("groups"), None, REQUIRED["groups"], "op")
    assert missing.problems == ("op.groups: table missing (run `python -m appliance upstream-init`)",)


def test_row_keys_compare_as_the_upstream_returns_them() -> None:
    rows = pa.table({"id": ["a"], "project_id": ["p"],
                     "last_seen_at": pa.array([1_780_920_000_123_000], pa.timestamp("us"))})
    keys = key_kinds(canonical_schema("profiles"), ("id", "project_id", "last_seen_at"))
    assert keys == [("id", "text"), ("project_id", "text"), ("last_seen_at", "time")]
    assert row_keys(rows, keys) == [("a", "p", 1_780_920_000_123)]


@pytest.mark.parametrize("engine_full", [
    "Distributed('{cluster}', currentDatabase(), events_replicated, rand())",
    "Distributed('main', 'openpanel', 'events_replicated', rand())",
    "Distributed(main, openpanel, events_replicated)",
])
def test_the_local_table_under_a_distributed_one_is_found_however_written(engine_full: str) -> None:
    tables = describe_tables([("events", "Distributed", engine_full, ""),
                              ("events_replicated", "ReplicatedMergeTree", "", _EVENTS_REPLICATED)], [])
    assert tables["events"].local_table == "events_replicated" and tables["events"].distributed

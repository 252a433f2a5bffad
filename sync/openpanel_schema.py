"""OpenPanel's current ClickHouse tables, as `upstream-init` creates them (docs/contract.md §10).

Derived from OpenPanel's own migrations — Openpanel-dev/openpanel at commit
ed7bdddbadbe556719ac4b08963905a2de717ddd, `packages/db/code-migrations/` — as they leave the
five tables the gateway fills, and built the way its helper `createTable()`
(`packages/db/src/clickhouse/migration.ts`) builds them:

- `events`: 3-init-ch, rebuilt with the current sort key by 8-order-keys (which includes
  6-add-revenue-column's `revenue`), `groups` from 11-add-groups, `idx_profile_id` from
  18-events-profile-id-index;
- `sessions`: 4-add-sessions, rebuilt by 8-order-keys (no `properties` column since then),
  `groups` from 11-add-groups;
- `profiles`: 16-restructure-profiles (which includes 11's `groups`);
- `groups`: 11-add-groups;
- `session_replay_chunks`: 10-add-session-replay, with its 30-day TTL.

Single node: one MergeTree-family table each. Clustered (`upstream.cluster`): a Replicated
table `<name>_replicated` on every node plus a Distributed `<name>` over it, `ON CLUSTER`, with
OpenPanel's replica path and sharding keys. The gateway adds one thing OpenPanel does not set:
`non_replicated_deduplication_window` on single-node tables, so a resent insert lands once
(replicated tables deduplicate by default). `tests/data/openpanel/` holds the schema the
migrations themselves produce, to test against.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPENPANEL_SOURCE = "Openpanel-dev/openpanel@ed7bdddbadbe556719ac4b08963905a2de717ddd packages/db/code-migrations"
# createTable()'s replica path (migration.ts); `{table}` etc. are the servers' macros.
_REPLICA_PATH = "/clickhouse/{{installation}}/{{cluster}}/tables/{{shard}}/openpanel/v{version}/{{table}}"
# What the gateway sets on single-node tables: how many recent insert tokens a table remembers,
# far more than the batches of one long outage.
DEDUPLICATION_WINDOW = 100_000


@dataclass(frozen=True, slots=True)
class TableDefinition:
    name: str
    columns: tuple[str, ...]
    order_by: tuple[str, ...]
    engine: str = "MergeTree()"
    partition_by: str = ""
    indices: tuple[str, ...] = ()
    ttl: str = ""
    settings: tuple[tuple[str, int], ...] = (("index_granularity", 8192),)
    distribution_hash: str = "rand()"
    replicated_version: str = "1"


_GEO_AND_AGENT_EVENTS = (
    "`country` LowCardinality(FixedString(2))", "`city` String", "`region` LowCardinality(String)",
    "`longitude` Nullable(Float32) CODEC(Gorilla, LZ4)", "`latitude` Nullable(Float32) CODEC(Gorilla, LZ4)",
    "`os` LowCardinality(String)", "`os_version` LowCardinality(String)", "`browser` LowCardinality(String)",
    "`browser_version` LowCardinality(String)", "`device` LowCardinality(String)", "`brand` LowCardinality(String)",
    "`model` LowCardinality(String)",
)

TABLES: tuple[TableDefinition, ...] = (
    TableDefinition(
        name="events",
        columns=(
            "`id` UUID DEFAULT generateUUIDv4()", "`name` LowCardinality(String)", "`sdk_name` LowCardinality(String)",
            "`sdk_version` LowCardinality(String)", "`device_id` String CODEC(ZSTD(3))",
            "`profile_id` String CODEC(ZSTD(3))", "`project_id` String CODEC(ZSTD(3))",
            "`session_id` String CODEC(LZ4)", "`groups` Array(String) DEFAULT [] CODEC(ZSTD(3))",
            "`path` String CODEC(ZSTD(3))", "`origin` String CODEC(ZSTD(3))", "`referrer` String CODEC(ZSTD(3))",
            "`referrer_name` String CODEC(ZSTD(3))", "`referrer_type` LowCardinality(String)", "`revenue` UInt64",
            "`duration` UInt64 CODEC(Delta(4), LZ4)", "`properties` Map(String, String) CODEC(ZSTD(3))",
            "`created_at` DateTime64(3) CODEC(DoubleDelta, ZSTD(3))", *_GEO_AND_AGENT_EVENTS,
            "`imported_at` Nullable(DateTime) CODEC(Delta(4), LZ4)",
        ),
        indices=(
            "INDEX idx_name name TYPE bloom_filter GRANULARITY 1",
            "INDEX idx_properties_bounce properties['__bounce'] TYPE set(3) GRANULARITY 1",
            "INDEX idx_origin origin TYPE bloom_filter(0.05) GRANULARITY 1",
            "INDEX idx_path path TYPE bloom_filter(0.01) GRANULARITY 1",
            "INDEX idx_profile_id profile_id TYPE bloom_filter(0.01) GRANULARITY 1",
        ),
        order_by=("project_id", "toDate(created_at)", "created_at", "name"),
        partition_by="toYYYYMM(created_at)",
        settings=(("index_granularity", 8192), ("enable_block_offset_column", 1), ("enable_block_number_column", 1)),
        distribution_hash="cityHash64(project_id, toString(toStartOfHour(created_at)))",
    ),
    TableDefinition(
        name="sessions",
        engine="VersionedCollapsingMergeTree(sign, version)",
        columns=(
            "`id` String", "`project_id` String CODEC(ZSTD(3))", "`profile_id` String CODEC(ZSTD(3))",
            "`device_id` String CODEC(ZSTD(3))", "`groups` Array(String) DEFAULT [] CODEC(ZSTD(3))",
            "`created_at` DateTime64(3) CODEC(DoubleDelta, ZSTD(3))",
            "`ended_at` DateTime64(3) CODEC(DoubleDelta, ZSTD(3))", "`is_bounce` Bool",
            "`entry_origin` LowCardinality(String)", "`entry_path` String CODEC(ZSTD(3))",
            "`exit_origin` LowCardinality(String)", "`exit_path` String CODEC(ZSTD(3))", "`screen_view_count` Int32",
            "`revenue` Float64", "`event_count` Int32", "`duration` UInt32",
            "`country` LowCardinality(FixedString(2))", "`region` LowCardinality(String)", "`city` String",
            "`longitude` Nullable(Float32) CODEC(Gorilla, LZ4)", "`latitude` Nullable(Float32) CODEC(Gorilla, LZ4)",
            "`device` LowCardinality(String)", "`brand` LowCardinality(String)", "`model` LowCardinality(String)",
            "`browser` LowCardinality(String)", "`browser_version` LowCardinality(String)",
            "`os` LowCardinality(String)", "`os_version` LowCardinality(String)",
            "`utm_medium` String CODEC(ZSTD(3))", "`utm_source` String CODEC(ZSTD(3))",
            "`utm_campaign` String CODEC(ZSTD(3))", "`utm_content` String CODEC(ZSTD(3))",
            "`utm_term` String CODEC(ZSTD(3))", "`referrer` String CODEC(ZSTD(3))",
            "`referrer_name` String CODEC(ZSTD(3))", "`referrer_type` LowCardinality(String)", "`sign` Int8",
            "`version` UInt64",
        ),
        order_by=("project_id", "toDate(created_at)", "created_at"),
        partition_by="toYYYYMM(created_at)",
        distribution_hash="cityHash64(project_id, toString(toStartOfHour(created_at)))",
    ),
    TableDefinition(
        name="profiles",
        engine="ReplacingMergeTree(last_seen_at)",
        columns=(
            "`id` String CODEC(ZSTD(3))", "`is_external` Bool", "`first_name` String CODEC(ZSTD(3))",
            "`last_name` String CODEC(ZSTD(3))", "`email` String CODEC(ZSTD(3))", "`avatar` String CODEC(ZSTD(3))",
            "`properties` Map(String, String) CODEC(ZSTD(3))", "`project_id` String CODEC(ZSTD(3))",
            "`groups` Array(String) DEFAULT [] CODEC(ZSTD(3))", "`created_at` DateTime64(3) CODEC(Delta(4), LZ4)",
            "`last_seen_at` DateTime64(3) CODEC(Delta(4), LZ4)",
        ),
        indices=(
            "INDEX idx_first_name first_name TYPE bloom_filter GRANULARITY 1",
            "INDEX idx_last_name last_name TYPE bloom_filter GRANULARITY 1",
            "INDEX idx_email email TYPE bloom_filter GRANULARITY 1",
        ),
        order_by=("project_id", "id"),
        partition_by="toYYYYMM(created_at)",
        distribution_hash="cityHash64(project_id)",
        replicated_version="2",
    ),
    TableDefinition(
        name="groups",
        engine="ReplacingMergeTree(version, deleted)",
        columns=(
            "`id` String", "`project_id` String", "`type` String", "`name` String",
            "`properties` Map(String, String)", "`created_at` DateTime", "`version` UInt64",
            "`deleted` UInt8 DEFAULT 0",
        ),
        order_by=("project_id", "id"),
        settings=(),
        distribution_hash="cityHash64(project_id, id)",
    ),
    TableDefinition(
        name="session_replay_chunks",
        columns=(
            "`project_id` String CODEC(ZSTD(3))", "`session_id` String CODEC(ZSTD(3))", "`chunk_index` UInt16",
            "`started_at` DateTime64(3) CODEC(DoubleDelta, ZSTD(3))",
            "`ended_at` DateTime64(3) CODEC(DoubleDelta, ZSTD(3))", "`events_count` UInt16",
            "`is_full_snapshot` Bool", "`payload` String CODEC(ZSTD(6))",
        ),
        order_by=("project_id", "session_id", "started_at", "chunk_index"),
        partition_by="toYYYYMMDD(started_at)",
        ttl="started_at + INTERVAL 30 DAY",
        distribution_hash="cityHash64(project_id, session_id)",
    ),
)


def create_database(database: str, cluster: str) -> str:
    return f"CREATE DATABASE IF NOT EXISTS {database}{_on_cluster(cluster)}"


def create_table(table: TableDefinition, database: str, cluster: str) -> list[str]:
    """The statements that create `table` in `database`: one on a single node, two on a cluster."""
    body = ",\n  ".join((*table.columns, *table.indices))
    tail = "\n".join(part for part in (
        f"PARTITION BY {table.partition_by}" if table.partition_by else "",
        f"ORDER BY ({', '.join(table.order_by)})",
        f"TTL {table.ttl}" if table.ttl else "",
    ) if part)
    if not cluster:
        settings = (*table.settings, ("non_replicated_deduplication_window", DEDUPLICATION_WINDOW))
        return [f"CREATE TABLE IF NOT EXISTS {database}.{table.name} (\n  {body}\n)\nENGINE = {table.engine}\n"
                f"{tail}\n{_settings(settings)}"]
    local = f"{table.name}_replicated"
    return [
        f"CREATE TABLE IF NOT EXISTS {database}.{local}{_on_cluster(cluster)} (\n  {body}\n)\n"
        f"ENGINE = {_replicated(table)}\n{tail}\n{_settings(table.settings)}".rstrip(),
        f"CREATE TABLE IF NOT EXISTS {database}.{table.name}{_on_cluster(cluster)} AS {database}.{local}\n"
        f"ENGINE = Distributed('{cluster}', '{database}', '{local}', {table.distribution_hash})",
    ]


def _on_cluster(cluster: str) -> str:
    return f" ON CLUSTER '{cluster}'" if cluster else ""


def _settings(settings: tuple[tuple[str, int], ...]) -> str:
    return f"SETTINGS {', '.join(f'{key} = {value}' for key, value in settings)}" if settings else ""


def _replicated(table: TableDefinition) -> str:
    """`ReplacingMergeTree(version, deleted)` →
    `ReplicatedReplacingMergeTree('<path>', '{replica}', version, deleted)`, as createTable() does."""
    match = re.fullmatch(r"(\w+)\((.*)\)", table.engine)
    assert match is not None, table.engine
    name, arguments = match.groups()
    path = _REPLICA_PATH.format(version=table.replicated_version)
    return f"Replicated{name}('{path}', '{{replica}}'{', ' + arguments if arguments else ''})"

"""`upstream-init`'s tables are OpenPanel's: compared with what OpenPanel's own migrations build.

Single node: both are created in the same embedded ClickHouse (chdb) and compared through its
system tables — columns with types, defaults and codecs, engine, keys, partitioning, skip
indexes, TTL and settings — where the only allowed difference is the gateway's
`non_replicated_deduplication_window`. Clustered: chdb has no cluster, so the generated DDL is
compared with the statements OpenPanel's migrations generate for a cluster
(`tests/data/openpanel/schema_cluster.sql`).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from sync import openpanel_schema
from sync.clickhouse import Upstream
from tests.openpanel_tables import FIXTURE, create_upstream_tables

CLUSTER_FIXTURE = FIXTURE.with_name("schema_cluster.sql")
TABLES = tuple(table.name for table in openpanel_schema.TABLES)
_databases = itertools.count()


def _shape(upstream: Upstream) -> dict[str, Any]:
    database = upstream.database
    names = ", ".join(f"'{name}'" for name in TABLES)

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return sorted(upstream.query(sql.format(database=database, names=names)))

    settings = {name: sorted(setting for setting in query.partition(" SETTINGS ")[2].split(", ")
                             if not setting.startswith("non_replicated_deduplication_window"))
                for name, query in rows("SELECT name, create_table_query FROM system.tables "
                                        "WHERE database = '{database}' AND name IN ({names})")}
    ttls = {name: (re.search(r" TTL (.*?) SETTINGS", query) or [None, ""])[1]
            for name, query in rows("SELECT name, create_table_query FROM system.tables "
                                    "WHERE database = '{database}' AND name IN ({names})")}
    return {
        "columns": rows("SELECT table, position, name, type, default_kind, default_expression, compression_codec "
                        "FROM system.columns WHERE database = '{database}' AND table IN ({names})"),
        "tables": rows("SELECT name, engine, engine_full LIKE '%non_replicated_deduplication_window = 100000%', "
                       "partition_key, sorting_key, primary_key FROM system.tables "
                       "WHERE database = '{database}' AND name IN ({names})"),
        "indexes": rows("SELECT table, name, type_full, expr, granularity FROM system.data_skipping_indices "
                        "WHERE database = '{database}' AND table IN ({names})"),
        "settings": settings,
        "ttl": ttls,
    }


def test_upstream_init_builds_what_openpanels_migrations_build(chdb_folder: Path) -> None:
    by_migrations = Upstream(f"chdb://{chdb_folder}", f"schema_{next(_databases)}")
    create_upstream_tables(by_migrations, "openpanel-migrations")
    by_init = Upstream(f"chdb://{chdb_folder}", f"schema_{next(_databases)}")
    assert by_init.create_tables() == list(TABLES)
    ours, theirs = _shape(by_init), _shape(by_migrations)
    # The one difference on purpose: a resent insert token is dropped on the gateway's tables.
    assert {row[0]: row[2] for row in ours["tables"]} == dict.fromkeys(TABLES, True)
    assert {row[0]: row[2] for row in theirs["tables"]} == dict.fromkeys(TABLES, False)
    for part in ("tables", "columns", "indexes"):
        strip = (lambda row: row[:2] + row[3:]) if part == "tables" else (lambda row: row)
        assert [strip(row) for row in ours[part]] == [strip(row) for row in theirs[part]], part
    assert ours["settings"] == theirs["settings"]
    assert ours["ttl"] == theirs["ttl"] == {**dict.fromkeys(TABLES, ""),
                                            "session_replay_chunks": "started_at + toIntervalDay(30)"}


def _openpanel_cluster_statement(table: str) -> str:
    """The last statement OpenPanel's cluster migrations use to create `table`'s replicated table."""
    statements = CLUSTER_FIXTURE.read_text().split(";\n")
    pattern = re.compile(rf"CREATE TABLE IF NOT EXISTS {table}(_new_\d+)?_replicated ON CLUSTER")
    return [s.strip() for s in statements if pattern.search(s)][-1]


def _clause(statement: str, keyword: str) -> str:
    match = re.search(rf"^{keyword} (.*)$", statement, re.MULTILINE)
    return match.group(1) if match else ""


@pytest.mark.parametrize("table", openpanel_schema.TABLES, ids=TABLES)
def test_clustered_ddl_is_openpanels(table: openpanel_schema.TableDefinition) -> None:
    theirs = _openpanel_cluster_statement(table.name)
    replicated, distributed = openpanel_schema.create_table(table, "openpanel", "{cluster}")
    assert replicated.startswith(f"CREATE TABLE IF NOT EXISTS openpanel.{table.name}_replicated ON CLUSTER '{{cluster}}'")
    for keyword in ("ENGINE =", "PARTITION BY", "ORDER BY", "SETTINGS"):
        assert _clause(replicated, keyword) == _clause(theirs, keyword), keyword
    hashes = re.findall(rf"Distributed\('{{cluster}}', currentDatabase\(\), {table.name}(?:_new_\d+)?_replicated, "
                        r"(.*)\);?$", CLUSTER_FIXTURE.read_text(), re.MULTILINE)
    assert distributed.endswith(f"ENGINE = Distributed('{{cluster}}', 'openpanel', '{table.name}_replicated', "
                                f"{hashes[-1]})")

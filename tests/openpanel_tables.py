"""Upstream tables for tests, as OpenPanel's own migrations leave them or as `upstream-init` makes them.

`tests/data/openpanel/schema_single_node.sql` is the schema OpenPanel's migrations produce on a
fresh single-node install (its header says how it was generated); it is replayed into a
database of the test's choosing. Such tables have no `non_replicated_deduplication_window`,
as in a real OpenPanel.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from sync.clickhouse import Upstream

FIXTURE = Path(__file__).resolve().parent / "data" / "openpanel" / "schema_single_node.sql"
# How the upstream tables of a test are made: by OpenPanel's migrations, or by `upstream-init`.
SCHEMAS = ("openpanel-migrations", "upstream-init")


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def openpanel_statements(database: str) -> list[str]:
    """The fixture's statements, in order, for `database` instead of `openpanel`.

    The materialized views' UUIDs (pinned in the fixture, and naming their `.inner_id.<uuid>`
    storage tables) are replaced by UUIDs of this database, consistently, so one engine can hold
    the schema several times.
    """
    text = "\n".join(line for line in FIXTURE.read_text().splitlines() if not line.startswith("--"))
    text = _UUID.sub(lambda match: str(uuid.uuid5(uuid.NAMESPACE_URL, f"{database}/{match.group(0)}")), text)
    text = re.sub(r"DATABASE (IF NOT EXISTS )?openpanel\b", f"DATABASE \\1{database}", text)
    text = re.sub(r"\bopenpanel\.", f"{database}.", text)
    return [part.strip() for part in re.split(r";\s*\n", text) if part.strip()]


def create_upstream_tables(upstream: Upstream, schema: str) -> None:
    """Make `upstream.database`'s tables the way `schema` says (one of `SCHEMAS`)."""
    if schema == "upstream-init":
        upstream.create_tables()
        return
    for statement in openpanel_statements(upstream.database):
        upstream.command(statement)

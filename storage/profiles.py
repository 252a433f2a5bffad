"""Profiles: the rows OpenPanel keeps per visitor, changed only by the writer (docs/contract.md §7).

Input: a request's `ProfileChange`s (identify, increment, decrement, assign_groups), applied in
item order, and the profiles of new sessions (`upsert_session_profiles`). Output: the changed
profiles rewritten (the stored row deleted by rowid, the new one appended with a new seq), and
the changes refused on stored state (an increment of an unknown profile, or of a property that
is not a number) as `validation` messages by item index.

The table has no primary key: DuckDB holds such an index in memory whole (~64 bytes per
profile, and profiles are never dropped), so a store of millions of visitors would fail its
commits at `storage.memory_limit`, as the sessions table did. `StoredProfiles` keeps a filter
over every profile written instead (4 bytes per write): a profile it has never seen is new
without a read, and a stored one is looked for only among rows written since the filter's
segment that holds it, so a commit's cost does not grow with the table.
"""

from __future__ import annotations

from typing import Any, Protocol

import duckdb
import msgspec
import numpy as np
import pyarrow as pa

from storage.database import arrow_result, registered
from storage.recent_ids import RecentIds
from storage.schema import PROFILE_ARROW_SCHEMA
from storage.write_request import ProfileChange

_ENCODE = msgspec.json.Encoder(order="sorted")
_DECODE = msgspec.json.Decoder(dict[str, str])


# How a profile is filed in `StoredProfiles` (DuckDB's hash of its key, in SQL and from the store alike).
_KEY = "project_id, id"
_KEY_HASH = f"hash({_KEY})"
# The filter is rebuilt once it holds twice the ids the table had at its last build, or this many.
_REBUILD_AFTER_IDS = 1 << 19
# A seq no row has: the floor of a lookup whose ids were never written (reads no row group).
_NO_ROW = 2**62
_NAMES = ", ".join(PROFILE_ARROW_SCHEMA.names)
# What OpenPanel's `createEvent` writes into a profile's properties on `session_start`: these
# columns of the event, those not empty, as a JSON object in this order.
SESSION_CONTEXT_COLUMNS = ("path", "country", "city", "region", "longitude", "latitude", "os", "os_version",
                           "browser", "browser_version", "device", "brand", "model", "referrer", "referrer_name",
                           "referrer_type")
# Written as text, each value quoted by `to_json`: the same text as a `to_json` of a map of the
# non-empty fields, in 60% of its time (2,000 new sessions: 6.2 instead of 9.9 ms).
SESSION_CONTEXT_JSON = "'{' || concat_ws(',', " + ", ".join(
    f"""CASE WHEN coalesce({name}::VARCHAR, '') <> '' THEN '"{name}":' || to_json({name}::VARCHAR) END"""
    for name in SESSION_CONTEXT_COLUMNS) + ") || '}'"


class SequenceSource(Protocol):
    """Hands out sequence numbers (storage.store.Sequences)."""

    def take(self, table: str, count: int) -> int: ...


class StoredProfiles:
    """Which profiles the store holds, and the seq from which each one's row is to be looked for.

    Every write files its ids (before its transaction commits: an id filed for nothing only
    costs a lookup). Rewrites file an id again, so the filter is rebuilt from the table when it
    holds twice the ids the table had at its last build (`rebuild_if_due`, between commits).
    """

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self._ids = RecentIds(None)
        self._rows_at_build = 0
        self.rebuild(connection)

    def rebuild(self, connection: duckdb.DuckDBPyConnection) -> None:
        self._ids = RecentIds.from_store(connection, None, 0, table="profiles", written_at="updated_at", key=_KEY)
        self._rows_at_build = self._ids.count

    def rebuild_if_due(self, connection: duckdb.DuckDBPyConnection) -> None:
        if self._ids.count > max(2 * self._rows_at_build, _REBUILD_AFTER_IDS):
            self.rebuild(connection)

    @property
    def memory_bytes(self) -> int:
        return self._ids.memory_bytes

    def find(self, connection: duckdb.DuckDBPyConnection, wanted: pa.Table) -> pa.Table:
        """The stored rows of the `wanted` (project_id, id) keys, each with its `stored_rowid`."""
        with registered(connection, "wanted_profiles", wanted):
            hashes = _key_hashes(connection, "wanted_profiles")
            floors = self._ids.newest_first_seq(hashes, 0)
            maybe = floors >= 0
            since = int(floors[maybe].min()) if maybe.any() else _NO_ROW
            found = _stored_rows(connection, since)
            if since not in (0, _NO_ROW) and not np.isin(hashes[maybe], found.column("key_hash").to_numpy()).all():
                # A false "maybe" may have named a segment newer than the row: look everywhere.
                found = _stored_rows(connection, 0)
        return found

    def file(self, hashes: np.ndarray, first_seq: int) -> None:
        """Note profiles being written (with seqs of at least `first_seq`)."""
        self._ids.add(hashes, 0, first_seq)


def _key_hashes(connection: duckdb.DuckDBPyConnection, table: str) -> np.ndarray:
    hashes: np.ndarray = arrow_result(connection, f"SELECT {_KEY_HASH} FROM {table}").column(0).to_numpy()  # noqa: S608
    return hashes


def _stored_rows(connection: duckdb.DuckDBPyConnection, since: int) -> pa.Table:
    # Rewritten rows are appended with a new seq, so a floor lets DuckDB skip older row groups.
    found = arrow_result(
        connection,
        f"""SELECT p.rowid AS stored_rowid, hash(p.project_id, p.id) AS key_hash, p.* FROM profiles p
            JOIN wanted_profiles w ON p.project_id = w.project_id AND p.id = w.id
            WHERE p.seq >= {since}::BIGINT""")  # noqa: S608 - an int
    return found


def upsert_session_profiles(connection: duckdb.DuckDBPyConnection, sequences: SequenceSource,
                            stored: StoredProfiles, first_seq: int, last_seq: int) -> None:
    """The profile of each new session among events `first_seq`..`last_seq`, as OpenPanel
    upserts it on `session_start`.

    An anonymous visitor's profile (its id is the device id) is created with
    `is_external = false`; the event's page, place, agent and referrer are merged into the
    profile's properties, and `last_seen_at` (local `updated_at`) is when the gateway received
    it. A stored profile keeps its other fields.
    """
    incoming = arrow_result(connection, f"""
        SELECT project_id, profile_id AS id, profile_id <> device_id AS is_external, created_at,
               received_at AS updated_at,
               {SESSION_CONTEXT_JSON} AS properties
        FROM events
        WHERE seq BETWEEN ? AND ? AND name = 'session_start' AND profile_id <> ''
        QUALIFY row_number() OVER (PARTITION BY project_id, profile_id ORDER BY created_at DESC) = 1""",  # noqa: S608
        [first_seq, last_seq])
    if not len(incoming):
        return
    found = stored.find(connection, incoming.select(["project_id", "id"]))
    profile_seq = sequences.take("profiles", len(incoming))
    with registered(connection, "session_profiles", incoming), registered(connection, "stored_profiles", found):
        merged = arrow_result(connection, """
            SELECT s.stored_rowid, ?::BIGINT + row_number() OVER () - 1 AS seq, i.project_id, i.id,
                   coalesce(s.first_name, '') AS first_name, coalesce(s.last_name, '') AS last_name,
                   coalesce(s.email, '') AS email, coalesce(s.avatar, '') AS avatar,
                   CASE WHEN s.stored_rowid IS NULL THEN i.properties
                        ELSE json_merge_patch(s.properties, i.properties)::VARCHAR END AS properties,
                   coalesce(s.is_external, i.is_external) AS is_external,
                   coalesce(s.created_at, i.created_at) AS created_at,
                   CASE WHEN s.stored_rowid IS NULL THEN i.updated_at
                        ELSE greatest(s.updated_at, i.updated_at) END AS updated_at,
                   coalesce(s.groups, []::VARCHAR[]) AS groups
            FROM session_profiles i LEFT JOIN stored_profiles s ON s.project_id = i.project_id AND s.id = i.id""",
            [profile_seq])
    _replace(connection, stored, merged, profile_seq)


def apply_profile_changes(
    connection: duckdb.DuckDBPyConnection, sequences: SequenceSource, stored: StoredProfiles,
    changes: list[ProfileChange],
) -> dict[int, str]:
    """Apply changes in order; returns the refused ones (item index → message).

    `last_seen_at` (local `updated_at`) becomes the time the change was received, as OpenPanel's
    `upsertProfile` sets it to the time of the write; it is also the version of the upstream
    ReplacingMergeTree, so it must advance with every write whatever the events' own times.
    """
    profiles = _load(connection, stored, {(c.project_id, c.id) for c in changes})
    touched: set[tuple[str, str]] = set()
    refused: dict[int, str] = {}
    for change in changes:
        key = (change.project_id, change.id)
        problem = _apply(profiles, key, change)
        if problem is None:
            touched.add(key)
        else:
            refused[change.index] = problem
    if touched:
        _write(connection, sequences, stored, [(key, profiles[key]) for key in touched])
    return refused


def _apply(profiles: dict[tuple[str, str], dict[str, Any]], key: tuple[str, str], change: ProfileChange) -> str | None:
    profile = profiles.get(key)
    if change.kind in ("increment", "decrement"):
        if profile is None:
            return f"payload.profileId: no profile {change.id!r}; identify it first"
        current = profile["properties"].get(change.property, "0")
        try:
            number = float(current)
        except ValueError:
            return f"payload.property: {change.property!r} holds {current!r}, not a number"
        number += change.amount if change.kind == "increment" else -change.amount
        profile["properties"][change.property] = str(int(number)) if number.is_integer() else repr(number)
    else:
        if profile is None:
            profile = profiles[key] = {"first_name": "", "last_name": "", "email": "", "avatar": "",
                                       "properties": {}, "groups": [], "created_at": change.seen_at,
                                       "is_external": True}
        if change.kind == "identify":
            profile["is_external"] = True  # an anonymous visitor's profile, now identified
        for name in ("first_name", "last_name", "email", "avatar"):
            value = getattr(change, name)
            if value:
                profile[name] = value
        profile["properties"].update(change.properties)
        profile["groups"] = list(dict.fromkeys([*profile["groups"], *change.groups]))
        profile["created_at"] = min(profile["created_at"], change.seen_at)
    written_at = change.received_at or change.seen_at
    profile["updated_at"] = max(profile.get("updated_at", written_at), written_at)
    return None


def _load(connection: duckdb.DuckDBPyConnection, stored: StoredProfiles,
          keys: set[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    wanted = pa.table({"project_id": [k[0] for k in keys], "id": [k[1] for k in keys]})
    found = stored.find(connection, wanted)
    return {
        (r["project_id"], r["id"]): {
            "stored_rowid": r["stored_rowid"], "first_name": r["first_name"], "last_name": r["last_name"],
            "email": r["email"], "avatar": r["avatar"], "properties": _DECODE.decode(r["properties"]),
            "groups": list(r["groups"]), "created_at": _epoch_ms(r["created_at"]),
            "updated_at": _epoch_ms(r["updated_at"]), "is_external": r["is_external"]}
        for r in found.to_pylist()
    }


def _epoch_ms(value: Any) -> int:
    return int(pa.scalar(value, pa.timestamp("ms")).value)


def _write(connection: duckdb.DuckDBPyConnection, sequences: SequenceSource, stored: StoredProfiles,
           profiles: list[tuple[tuple[str, str], dict[str, Any]]]) -> None:
    first_seq = sequences.take("profiles", len(profiles))
    records = [
        {"seq": first_seq + n, "project_id": key[0], "id": key[1], "first_name": p["first_name"],
         "last_name": p["last_name"], "email": p["email"], "avatar": p["avatar"],
         "properties": _ENCODE.encode(p["properties"]).decode(), "is_external": p["is_external"],
         "created_at": p["created_at"], "updated_at": p["updated_at"], "groups": p["groups"]}
        for n, (key, p) in enumerate(profiles)
    ]
    rows = pa.Table.from_pylist(records, schema=PROFILE_ARROW_SCHEMA).append_column(
        "stored_rowid", pa.array([p.get("stored_rowid") for _, p in profiles], pa.int64()))
    _replace(connection, stored, rows, first_seq)


def _replace(connection: duckdb.DuckDBPyConnection, stored: StoredProfiles, rows: pa.Table, first_seq: int) -> None:
    """Write profile rows: the stored rows they replace (`stored_rowid`) are deleted first."""
    with registered(connection, "written_profiles", rows):
        if rows.column("stored_rowid").null_count < len(rows):
            connection.execute("DELETE FROM profiles WHERE rowid IN "
                               "(SELECT stored_rowid FROM written_profiles WHERE stored_rowid IS NOT NULL)")
        # Column names come from storage.schema, never from a request.
        connection.execute(f"INSERT INTO profiles ({_NAMES}) SELECT {_NAMES} FROM written_profiles")  # noqa: S608
        hashes = _key_hashes(connection, "written_profiles")
    stored.file(hashes, first_seq)

"""Profile changes of one request, applied in item order (docs/contract.md §7); writer thread only.

Input: `ProfileChange`s (identify, increment, decrement, assign_groups). Output: the changed
profiles written with one `INSERT OR REPLACE`, and the changes refused on stored state (an
increment of an unknown profile, or of a property that is not a number) as `validation`
messages by item index. The affected profiles are read once, changed in memory, written once.
"""

from __future__ import annotations

from typing import Any, Protocol

import duckdb
import msgspec
import pyarrow as pa

from storage.schema import PROFILE_ARROW_SCHEMA
from storage.write_request import ProfileChange

_ENCODE = msgspec.json.Encoder(order="sorted")
_DECODE = msgspec.json.Decoder(dict[str, str])


class SequenceSource(Protocol):
    """Hands out sequence numbers (storage.store.Sequences)."""

    def take(self, table: str, count: int) -> int: ...


def apply_profile_changes(
    connection: duckdb.DuckDBPyConnection, sequences: SequenceSource, changes: list[ProfileChange]
) -> dict[int, str]:
    """Apply changes in order; returns the refused ones (item index → message).

    `last_seen_at` (local `updated_at`) becomes the time the change was received, as OpenPanel's
    `upsertProfile` sets it to the time of the write; it is also the version of the upstream
    ReplacingMergeTree, so it must advance with every write whatever the events' own times.
    """
    profiles = _load(connection, {(c.project_id, c.id) for c in changes})
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
        _write(connection, sequences, [(key, profiles[key]) for key in touched])
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


def _load(connection: duckdb.DuckDBPyConnection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    wanted = pa.table({"project_id": [k[0] for k in keys], "id": [k[1] for k in keys]})
    connection.register("wanted_profiles", wanted)
    try:
        rows = connection.execute(
            """SELECT p.project_id, p.id, first_name, last_name, email, avatar, properties, groups,
                      epoch_ms(created_at), epoch_ms(updated_at), is_external
               FROM profiles p JOIN wanted_profiles w USING (project_id, id)"""
        ).fetchall()
    finally:
        connection.unregister("wanted_profiles")
    return {
        (r[0], r[1]): {"first_name": r[2], "last_name": r[3], "email": r[4], "avatar": r[5],
                       "properties": _DECODE.decode(r[6]), "groups": list(r[7]), "created_at": r[8],
                       "updated_at": r[9], "is_external": r[10]}
        for r in rows
    }


def _write(connection: duckdb.DuckDBPyConnection, sequences: SequenceSource,
           profiles: list[tuple[tuple[str, str], dict[str, Any]]]) -> None:
    first_seq = sequences.take("profiles", len(profiles))
    records = [
        {"seq": first_seq + n, "project_id": key[0], "id": key[1], "first_name": p["first_name"],
         "last_name": p["last_name"], "email": p["email"], "avatar": p["avatar"],
         "properties": _ENCODE.encode(p["properties"]).decode(), "is_external": p["is_external"],
         "created_at": p["created_at"], "updated_at": p["updated_at"], "groups": p["groups"]}
        for n, (key, p) in enumerate(profiles)
    ]
    names = ", ".join(PROFILE_ARROW_SCHEMA.names)
    connection.register("incoming_profiles", pa.Table.from_pylist(records, schema=PROFILE_ARROW_SCHEMA))
    try:
        # Column names come from storage.schema, never from a request.
        connection.execute(f"INSERT OR REPLACE INTO profiles ({names}) SELECT {names} FROM incoming_profiles")  # noqa: S608
    finally:
        connection.unregister("incoming_profiles")

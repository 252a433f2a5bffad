"""What one write transaction does (docs/contract.md §7, §8); run only on the writer thread.

Input: the `WriteRequest`s of one group commit. Output: every row stored in one DuckDB
transaction, and per request which events were duplicates and which rows were refused on stored
state. Inside the transaction: duplicate events are dropped, sessions seen for the first time
get their one `session_start` (checked against the `sessions` table and claimed in the diskcache
lock), session aggregates are merged, profile changes applied in order, groups and replay chunks
upserted. The session closer runs here too, so it never races a commit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import duckdb
import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute

from storage.backup import copy_database
from storage.database import arrow_result, compact, registered, salts_for
from storage.locks import SessionStartLocks
from storage.profiles import StoredProfiles, apply_profile_changes, upsert_session_profiles
from storage.recent_ids import RecentIds
from storage.schema import (
    GROUP_ARROW_SCHEMA,
    REPLAY_ARROW_SCHEMA,
    SESSION_COLUMNS,
)
from storage.session_aggregates import (
    NOT_COLUMNS,
    event_batch,
    insert_session_ends,
    session_aggregates,
    session_starts,
    with_session_referrers,
)
from storage.write_request import GroupUpsert, ReplayChunk, StoredIds, WriteRequest, WriteResult

log = logging.getLogger(__name__)

_ENCODE = msgspec.json.Encoder(order="sorted")
_DAY_MS = 86_400_000
_SEQUENCED_TABLES = ("events", "profiles", "sessions", "groups", "session_replay_chunks")

# How a partial session aggregate (`excluded`) merges into the stored row (`sessions`), column
# by column; the others keep the stored value. Every expression reads the row as it was before
# this commit, so entry/exit follow whichever side is earlier/later.
_SESSION_MERGE: dict[str, str] = {
    "seq": "excluded.seq",
    "profile_id": "CASE WHEN excluded.profile_id <> excluded.device_id THEN excluded.profile_id "
                  "ELSE sessions.profile_id END",
    "created_at": "least(sessions.created_at, excluded.created_at)",
    "ended_at": "greatest(sessions.ended_at, excluded.ended_at)",
    "duration": "epoch_ms(greatest(sessions.ended_at, excluded.ended_at)) "
                "- epoch_ms(least(sessions.created_at, excluded.created_at))",
    "event_count": "sessions.event_count + excluded.event_count",
    "screen_view_count": "sessions.screen_view_count + excluded.screen_view_count",
    "is_bounce": "sessions.screen_view_count + excluded.screen_view_count <= 1",
    "entry_path": "CASE WHEN excluded.entry_path <> '' AND (excluded.created_at < sessions.created_at "
                  "OR sessions.entry_path = '') THEN excluded.entry_path ELSE sessions.entry_path END",
    "entry_origin": "CASE WHEN excluded.entry_path <> '' AND (excluded.created_at < sessions.created_at "
                    "OR sessions.entry_path = '') THEN excluded.entry_origin ELSE sessions.entry_origin END",
    "exit_path": "CASE WHEN excluded.exit_path <> '' AND excluded.ended_at >= sessions.ended_at "
                 "THEN excluded.exit_path ELSE sessions.exit_path END",
    "exit_origin": "CASE WHEN excluded.exit_path <> '' AND excluded.ended_at >= sessions.ended_at "
                   "THEN excluded.exit_origin ELSE sessions.exit_origin END",
    "revenue": "least(sessions.revenue::HUGEINT + excluded.revenue, 18446744073709551615)::UBIGINT",
    "groups": "list_distinct(list_concat(sessions.groups, excluded.groups))",
    "is_live": "sessions.is_live OR excluded.is_live",
    "last_received_at": "greatest(sessions.last_received_at, excluded.last_received_at)",
}
# Each touched session as it is after this commit: the aggregate as it came for a new session,
# merged with the stored row for the others (whose `rowid` says which row it replaces).
_MERGED_SESSIONS = "SELECT sessions.rowid AS stored_rowid, hash(excluded.id) AS id_hash, " + ", ".join(  # noqa: S608 - constant column names
    "excluded.id AS id" if c.name == "id" else
    f"CASE WHEN sessions.id IS NULL THEN excluded.{c.name} ELSE {_SESSION_MERGE.get(c.name, 'sessions.' + c.name)} "
    f"END AS {c.name}"
    for c in SESSION_COLUMNS
) + """ FROM incoming_sessions excluded
      LEFT JOIN sessions ON sessions.id = excluded.id AND sessions.seq >= ?::BIGINT"""


# The open sessions quiet since the time given (twice: their last event's time and the last time
# one was received), the quietest first, at most the third parameter of them, with the rowid each
# is replaced by (`Store.close_sessions`). Chosen by their rowids first: a top-N of whole rows
# carries every column of every row through the sort (40 ms for 2,000 of 200k sessions, 23 ms so).
_QUIET_SESSIONS = """
    WITH quiet AS (
        SELECT rowid AS stored_rowid FROM sessions
        WHERE NOT closed AND ended_at < epoch_ms(?::BIGINT) AND last_received_at < epoch_ms(?::BIGINT)
        ORDER BY ended_at, rowid LIMIT ?)
    SELECT s.rowid AS stored_rowid, s.* FROM sessions s SEMI JOIN quiet q ON s.rowid = q.stored_rowid
    ORDER BY s.ended_at, s.rowid"""


@dataclass(frozen=True, slots=True)
class _WrittenSessions:
    rows: pa.Table  # `_MERGED_SESSIONS`: the sessions as written, and the rows they replace
    stored: np.ndarray  # per row, whether the session was stored before (bool)
    hashes: np.ndarray  # DuckDB's hash() of each id, for `Store.recent_sessions`
    first_seq: int


def _numbered(batch: pa.Table) -> pa.Table:
    """`batch` with its rows' `ordinal` their position in it (the order of the commit)."""
    position = batch.schema.get_field_index("ordinal")
    return batch.set_column(position, "ordinal", pa.array(np.arange(len(batch), dtype=np.int64)))


def _first_copies(ids: pa.ChunkedArray) -> np.ndarray:
    """Per id, the position of its first copy among `ids`."""
    codes = pa.compute.index_in(ids, value_set=pa.compute.unique(ids)).to_numpy()
    first: np.ndarray = np.unique(codes, return_index=True)[1][codes]
    return first


def _epoch_ms(scalar: pa.Scalar) -> int:
    """A millisecond timestamp scalar as epoch milliseconds."""
    return int(scalar.value)


def _stored(merged: pa.Table) -> np.ndarray:
    """Per merged session row, whether it replaces a stored row."""
    stored: np.ndarray = pa.compute.is_valid(merged.column("stored_rowid")).to_numpy(zero_copy_only=False)
    return stored


class Sequences:
    """Monotonic per-table sequence numbers (the sync watermark), handed out by the writer."""

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self._next: dict[str, int] = {}
        for table in _SEQUENCED_TABLES:
            row = connection.execute(f"SELECT coalesce(max(seq), 0) FROM {table}").fetchone()  # noqa: S608
            self._next[table] = (int(row[0]) if row else 0) + 1

    def take(self, table: str, count: int) -> int:
        """The first of `count` new numbers for `table`."""
        first = self._next[table]
        self._next[table] += count
        return first

    def snapshot(self) -> dict[str, int]:
        return dict(self._next)

    def restore(self, snapshot: dict[str, int]) -> None:
        self._next = dict(snapshot)


class Store:
    """The writer thread's view of the database."""

    def __init__(self, path: str, connection: duckdb.DuckDBPyConnection, locks: SessionStartLocks,
                 duplicate_window_ms: int) -> None:
        self.path = path
        self.connection = connection
        self.locks = locks
        self._duplicate_window_ms = duplicate_window_ms
        self.sequences = Sequences(connection)
        now_ms = int(time.time() * 1000)
        self.recent_ids = RecentIds.from_store(connection, duplicate_window_ms, now_ms)
        # A session can only gain events inside the acceptance window (a day more, for events
        # received before their time and clocks that were corrected).
        self.recent_sessions = RecentIds.from_store(connection, duplicate_window_ms + _DAY_MS, now_ms,
                                                    table="sessions", written_at="last_received_at")
        self.stored_profiles = StoredProfiles(connection)

    # ---- one group commit --------------------------------------------------------------------

    def commit(self, requests: list[WriteRequest]) -> list[WriteResult]:
        """Store a group of requests in one transaction."""
        claims: list[Future[list[tuple[str, str]]]] = []
        before = self.sequences.snapshot()
        # Rows not yet in columns (tests, tools) become columns here; a row that cannot (a value
        # out of its column's range) fails this commit, and the writer retries its requests alone.
        events = [r.event_columns if r.event_columns is not None else event_batch(r.events) for r in requests]
        batch = pa.concat_tables(events)
        self.connection.execute("BEGIN")
        try:
            results, new_rows, client_id_hashes = self._drop_duplicates(batch, [len(t) for t in events])
            written_sessions = self._store_events_and_sessions(new_rows, claims)
            for request, result in zip(requests, results, strict=True):
                if request.profile_changes:
                    result.rejected = apply_profile_changes(self.connection, self.sequences, self.stored_profiles,
                                                            request.profile_changes)
            self._upsert_groups([g for r in requests for g in r.groups])
            self._insert_replays([c for r in requests for c in r.replays])
            # Filed before the commit: should it fail, an id filed for nothing only costs a
            # lookup, whereas a committed id missing from the filters would be taken for new.
            received_ms = _epoch_ms(pa.compute.max(batch.column("received_at"))) if len(batch) else 0
            if client_id_hashes is not None:
                self.recent_ids.add(client_id_hashes, received_ms)  # duplicates are in already: no change
            if written_sessions is not None:
                self.recent_sessions.add(written_sessions.hashes, received_ms, written_sessions.first_seq)
            for claimed in claims:
                claimed.result()  # recorded before the commit, as a lock is taken before its work
            self.connection.execute("COMMIT")
        except BaseException:
            # Whatever fails here, the numbers and claims go back: the first error is the one raised.
            self._roll_back()
            self.sequences.restore(before)
            for claimed in claims:
                if claimed.exception() is None:
                    for project_id, session_id in claimed.result():
                        self.locks.release(project_id, session_id)
            raise
        self.stored_profiles.rebuild_if_due(self.connection)
        return results

    def _drop_duplicates(self, batch: pa.Table, request_sizes: list[int],
                         ) -> tuple[list[WriteResult], pa.Table, np.ndarray | None]:
        """Per request (the next `request_sizes` rows of `batch`, `EVENT_BATCH_SCHEMA`), its
        duplicates; the rows to store, numbered in commit order; and the hashes of the
        client-chosen ids.

        An event whose client-chosen id is stored already duplicates that stored copy; otherwise
        the first copy in this commit is stored and the later ones duplicate it. Set-based: only
        the duplicates found are looked at one by one.
        """
        results = [WriteResult(duplicates={}) for _ in request_sizes]
        client_positions = np.flatnonzero(batch.column("id_from_client").to_numpy(zero_copy_only=False))
        if not len(client_positions):
            return results, _numbered(batch), None
        candidates = batch.select(["id"]).take(client_positions)
        hashes = self._arrow_with("candidate_ids", candidates,
                                  "SELECT hash(id::UUID) FROM candidate_ids").column(0).to_numpy()
        stored: dict[str, StoredIds] = {}
        oldest_received = _epoch_ms(pa.compute.min(batch.column("received_at")))
        maybe_stored = self.recent_ids.may_hold(hashes, oldest_received)
        if maybe_stored.any():
            # An event can only be re-sent while it is inside the acceptance window, so its
            # first copy was received inside it too; `received_at` rises with `seq`, which
            # lets DuckDB skip old row groups.
            found = self._query_with(
                "candidate_ids", candidates.filter(pa.array(maybe_stored)),
                """SELECT id::VARCHAR, device_id, session_id FROM events
                   WHERE received_at >= epoch_ms(?::BIGINT) AND id IN (SELECT id::UUID FROM candidate_ids)""",
                [oldest_received - self._duplicate_window_ms],
            )
            stored = {row[0]: StoredIds(row[1], row[2]) for row in found}
        ids = candidates.column("id")
        first_copy = _first_copies(ids)
        duplicate = first_copy != np.arange(len(ids))
        if stored:
            duplicate |= pa.compute.is_in(ids, value_set=pa.array(list(stored), pa.string())).to_numpy(
                zero_copy_only=False)
        duplicates = np.flatnonzero(duplicate)
        if not len(duplicates):
            return results, _numbered(batch), hashes
        request_starts = np.cumsum([0, *request_sizes])
        id_texts = ids.take(duplicates).to_pylist()
        first_rows = batch.select(["device_id", "session_id"]).take(client_positions[first_copy[duplicates]])
        for candidate, id_text, device_id, session_id in zip(
                duplicates.tolist(), id_texts, first_rows.column("device_id").to_pylist(),
                first_rows.column("session_id").to_pylist(), strict=True):
            position = int(client_positions[candidate])
            request = int(np.searchsorted(request_starts, position, side="right")) - 1
            earlier = stored.get(id_text) or StoredIds(device_id, session_id)
            results[request].duplicates[position - int(request_starts[request])] = earlier
        keep = np.ones(len(batch), dtype=bool)
        keep[client_positions[duplicates]] = False
        return results, _numbered(batch.filter(pa.array(keep))), hashes

    def _store_events_and_sessions(
        self, batch: pa.Table, claims: list[Future[list[tuple[str, str]]]],
    ) -> _WrittenSessions | None:
        """Insert the rows of `batch` (`EVENT_BATCH_SCHEMA`, numbered by `ordinal`) and merge
        their sessions; returns the sessions written, if any.

        Set-based: the sessions' aggregates and the new sessions' `session_start` rows are SQL
        over the batch, the referrer each event inherits Arrow over it.
        """
        if not len(batch):
            return None
        rows = len(batch)
        with self._registered("incoming_events", batch):
            aggregates = session_aggregates(self.connection, batch)
            if not len(aggregates):
                self._insert_events(batch)
                return None
            oldest_received_ms = pa.compute.min(batch.column("received_at")).value  # the scalar's epoch ms
            written = self._merge_sessions(aggregates, oldest_received_ms)
            merged = written.rows
            new_sessions = merged.filter(pa.compute.invert(pa.array(written.stored))).select(["project_id", "id"])
            starts = None
            if len(new_sessions):
                # The sessions table says these sessions are new. Their locks are claimed for the
                # record (and for any other writer of this cache), all in one cache transaction, on
                # the cache's thread while this one writes; a key left by a transaction that never
                # committed is stale, and the table is the truth.
                keys = zip(new_sessions.column("project_id").to_pylist(), new_sessions.column("id").to_pylist(),
                           strict=True)
                claims.append(self.locks.claim_all_in_background(list(keys)))
                starts = session_starts(self.connection, batch, new_sessions.select(["id"]), rows)
            self._replace_sessions(merged)
            # A session's referrer is the one it started with: the stored row's, or a new session's
            # first event's (the merge keeps the stored one). Every event of the session carries it
            # (OpenPanel's referrer inheritance).
            first_seq = self._insert_events(batch, starts, merged)
        if starts is not None:
            upsert_session_profiles(self.connection, self.sequences, self.stored_profiles,
                                    first_seq, first_seq + rows + len(starts) - 1)
        return written

    def _insert_events(self, batch: pa.Table, starts: pa.Table | None = None,
                       sessions: pa.Table | None = None) -> int:
        """Insert `batch` (registered as `incoming_events`) and the `starts` numbered after it,
        each row taking its session's referrer from the merged `sessions` when given; returns
        the first seq."""
        if starts is None and sessions is None:
            return self._insert_rows("incoming_events", len(batch))
        rows = batch if starts is None else pa.concat_tables([batch, starts])
        if sessions is not None:
            rows = with_session_referrers(rows, sessions)
        with self._registered("new_events", rows):
            return self._insert_rows("new_events", len(rows))

    def _insert_rows(self, source: str, count: int) -> int:
        """Insert the `count` rows of `source` (`EVENT_BATCH_SCHEMA`) numbered by their ordinal."""
        first_seq = self.sequences.take("events", count)
        self.connection.execute(
            f"INSERT INTO events BY NAME SELECT * EXCLUDE ({', '.join(NOT_COLUMNS)}), "  # noqa: S608
            f"?::BIGINT + ordinal AS seq FROM {source}", [first_seq])
        return first_seq

    def _merge_sessions(self, aggregates: pa.Table, now_ms: int) -> _WrittenSessions:
        """The touched sessions as they are after this commit (`_MERGED_SESSIONS`), with new seqs.

        The stored rows are looked for only among rows whose seq is at least the smallest of
        the touched sessions' `recent_sessions.newest_first_seq` (rewritten rows are appended,
        so DuckDB skips the row groups before it); a session the filters do not hold is new.
        """
        first_seq = self.sequences.take("sessions", len(aggregates))
        aggregates = aggregates.set_column(0, "seq", pa.compute.add(aggregates.column("seq"), first_seq))
        with self._registered("incoming_sessions", aggregates):
            hashes = arrow_result(self.connection, "SELECT hash(id) FROM incoming_sessions").column(0).to_numpy()
            floors = self.recent_sessions.newest_first_seq(hashes, now_ms)
            maybe_stored = floors >= 0
            since = int(floors[maybe_stored].min()) if maybe_stored.any() else first_seq
            merged = arrow_result(self.connection, _MERGED_SESSIONS, [since])
            # By hash, not by position: the join's output order is not its input's.
            found = merged.column("id_hash").to_numpy()[_stored(merged)]
            if since > 0 and not np.isin(hashes[maybe_stored], found).all():
                # A false "maybe" may have named a segment newer than the row: look everywhere.
                merged = arrow_result(self.connection, _MERGED_SESSIONS, [0])
        return _WrittenSessions(merged, _stored(merged), hashes, first_seq)

    def _replace_sessions(self, merged: pa.Table) -> None:
        """Write the merged rows: the stored ones they replace are deleted by rowid first.

        DuckDB rewrites every column an `UPDATE` (or `ON CONFLICT DO UPDATE`) sets, which costs
        three times this delete and insert: a commit touching 600 sessions, 80% of them stored,
        against 200k (2M) stored sessions took 161 ms (580 ms) as an upsert, 50 ms (192 ms) so.
        """
        names = ", ".join(c.name for c in SESSION_COLUMNS)
        with self._registered("merged_sessions", merged):
            if merged.column("stored_rowid").null_count < len(merged):
                self.connection.execute("DELETE FROM sessions WHERE rowid IN "
                                        "(SELECT stored_rowid FROM merged_sessions WHERE stored_rowid IS NOT NULL)")
            self.connection.execute(f"INSERT INTO sessions ({names}) SELECT {names} FROM merged_sessions")  # noqa: S608

    def _upsert_groups(self, groups: list[GroupUpsert]) -> None:
        if not groups:
            return
        latest = {(g.project_id, g.id): g for g in groups}  # later items win
        first_seq = self.sequences.take("groups", len(latest))
        records = [
            {"seq": first_seq + n, "project_id": g.project_id, "id": g.id, "type": g.type, "name": g.name,
             "properties": _ENCODE.encode(g.properties).decode(), "created_at": g.seen_at, "updated_at": g.seen_at}
            for n, g in enumerate(latest.values())
        ]
        self._execute_with(
            "incoming_groups", pa.Table.from_pylist(records, schema=GROUP_ARROW_SCHEMA),
            """INSERT INTO groups SELECT * FROM incoming_groups ON CONFLICT (project_id, id) DO UPDATE SET
               seq = excluded.seq, type = excluded.type, name = excluded.name,
               properties = json_merge_patch(groups.properties, excluded.properties)::VARCHAR,
               created_at = least(groups.created_at, excluded.created_at),
               updated_at = greatest(groups.updated_at, excluded.updated_at)""",
        )

    def _insert_replays(self, chunks: list[ReplayChunk]) -> None:
        if not chunks:
            return
        unique = {(c.project_id, c.session_id, c.chunk_index): c for c in chunks}
        first_seq = self.sequences.take("session_replay_chunks", len(unique))
        records = [{"seq": first_seq + n, **msgspec.structs.asdict(c)} for n, c in enumerate(unique.values())]
        # A re-sent chunk (same session and index) is the same chunk: keep the first copy.
        self._execute_with(
            "incoming_replays", pa.Table.from_pylist(records, schema=REPLAY_ARROW_SCHEMA),
            "INSERT OR IGNORE INTO session_replay_chunks BY NAME SELECT * FROM incoming_replays",
        )

    # ---- the session closer ------------------------------------------------------------------

    def close_sessions(self, now_ms: int, timeout_ms: int, limit: int) -> int:
        """Emit `session_end` for the (at most `limit`) open sessions quiet longest, in one
        transaction; returns how many. Bounded, so a backlog of quiet sessions (a device's week
        offline, sent at once) is closed in transactions of bounded memory and length, with
        ingest commits between them.

        Set-based: the quiet rows are read once with their rowids; their `session_end` rows are
        one `INSERT … SELECT` over them, and the same rows, marked closed, replace them.
        """
        quiet_since = now_ms - timeout_ms
        quiet = arrow_result(self.connection, _QUIET_SESSIONS, [quiet_since, quiet_since, limit])
        if not len(quiet):
            return 0
        before = self.sequences.snapshot()
        self.connection.execute("BEGIN")
        try:
            positions = pa.array(np.arange(len(quiet), dtype=np.int64))
            with self._registered("quiet_sessions", quiet.append_column("position", positions)):
                insert_session_ends(self.connection, self.sequences.take("events", len(quiet)), now_ms)
            # Rewritten rather than updated in place, so the stored order stays the order of
            # `seq`, which lets a commit find recent sessions without reading old row groups.
            first_seq = self.sequences.take("sessions", len(quiet))
            closed = quiet.set_column(quiet.schema.get_field_index("closed"), "closed",
                                      pa.array(np.ones(len(quiet), dtype=bool)))
            closed = closed.set_column(closed.schema.get_field_index("seq"), "seq",
                                       pa.compute.add(positions, pa.scalar(first_seq, pa.int64())))
            self._replace_sessions(closed)
            self.connection.execute("COMMIT")
        except BaseException:
            self._roll_back()
            self.sequences.restore(before)
            raise
        return len(quiet)

    # ---- housekeeping ------------------------------------------------------------------------

    def checkpoint_if_due(self, wal_bytes_threshold: int) -> int:
        """Checkpoint when the WAL has grown past the threshold; returns the WAL size seen."""
        try:
            wal_bytes = os.path.getsize(self.path + ".wal")
        except OSError:
            return 0
        if wal_bytes >= wal_bytes_threshold:
            started = time.monotonic()
            self.connection.execute("CHECKPOINT")
            log.info("checkpointed %d WAL bytes in %.2fs", wal_bytes, time.monotonic() - started)
        return wal_bytes

    def compact(self) -> None:
        """Checkpoint and compact the store (`storage.database.compact`), logging how long it took."""
        started = time.monotonic()
        compact(self.connection)
        log.info("compacted the store in %.2fs", time.monotonic() - started)

    def salts_for(self, day: dt.date) -> tuple[str, str | None]:
        """The salt of `day` (created when missing) and the one before it."""
        return salts_for(self.connection, day)

    def ping(self) -> None:
        """A read through the writer's connection: raises if the store cannot answer (readiness)."""
        self.connection.execute("SELECT count(*) FROM schema_migrations").fetchall()

    def copy_to(self, destination: str) -> int:
        """Copy the store to a new DuckDB file between two commits; returns its size in bytes."""
        return copy_database(self.connection, destination)

    # ---- helpers -----------------------------------------------------------------------------

    def _roll_back(self) -> None:
        """End the failed transaction, if one is still open.

        A COMMIT that failed (a full disk: DuckDB could not write its WAL) has already ended the
        transaction; a ROLLBACK then raises "no transaction is active", which must not replace
        the real error.
        """
        with contextlib.suppress(duckdb.TransactionException):
            self.connection.execute("ROLLBACK")

    def _execute_with(self, name: str, table: pa.Table, sql: str) -> None:
        with self._registered(name, table):
            self.connection.execute(sql)

    def _arrow_with(self, name: str, table: pa.Table, sql: str) -> pa.Table:
        with self._registered(name, table):
            return arrow_result(self.connection, sql)

    def _query_with(self, name: str, table: pa.Table, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        with self._registered(name, table):
            return self.connection.execute(sql, params).fetchall()

    def _registered(self, name: str, table: pa.Table) -> contextlib.AbstractContextManager[None]:
        """`table` readable as `name` by the statements inside the block."""
        return registered(self.connection, name, table)

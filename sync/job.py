"""One sync pass (docs/contract.md §10): every table's backlog, batch by batch, exactly once.

A pass first reads the upstream's tables as they are (`Upstream.describe`) and plans, per
table, which columns to send (`sync.upstream_tables.plan_table`); a table whose types cannot
take the gateway's rows is reported as a problem and skipped, not retried in a loop. Then, for
each table in order: take the pending batch or record a new one (`storage.ledger`: reads on a
reader cursor, one short transaction on the writer), send it from a worker thread (the event
loop and the writer never wait for the network), then mark it done in one transaction with the
quarantine of refused rows.

Exactly once: every attempt of a batch sends the same rows with the same insert token. Where the
upstream table drops repeated tokens (a dedup window), that suffices; where it does not and the
window may not be set (`upstream.set_deduplication_window = false`, or the server refuses the
ALTER), the rows the upstream already holds are looked up by key before every insert. After an
ambiguous failure (timeout, lost response) that lookup runs before the resend on any table.
A refused block is split until the refused rows are alone; they go to the quarantine.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from storage import ledger
from storage.ledger import Batch, Refused
from storage.upstream_rows import (
    RECONCILE_TIME_COLUMN,
    REQUIRED,
    ROW_KEYS,
    SNAPSHOT_BATCH_ROWS,
    SNAPSHOTTED,
    TABLE_ORDER,
    canonical_schema,
)
from storage.writer import StorageWriter
from sync.clickhouse import Upstream, UpstreamError
from sync.openpanel_schema import DEDUPLICATION_WINDOW
from sync.shape import Block, fit, key_kinds, row_keys
from sync.upstream_tables import TablePlan, UpstreamTable, plan_table

log = logging.getLogger(__name__)

_MAX_BACKOFF_SECONDS = 300.0
# Keys per reconciliation query: keeps each request far below HTTP servers' URL limits.
_LOOKUP_CHUNK = 2000
# Batches of events or replay chunks recorded ahead of the one being sent (`_send_pipelined`):
# about two seconds of sending at 50,000 rows a batch, what a checkpoint may hold the writer.
_RECORDED_AHEAD = 4

Progress = Callable[[str, int], None]  # (table, rows of it sent so far in this pass)


@dataclass
class PassResult:
    sent_rows: dict[str, int] = field(default_factory=dict)
    quarantined_rows: int = 0
    error: str | None = None
    problems: list[str] = field(default_factory=list)  # tables the upstream cannot take (skipped)
    finished_at_ms: int = 0
    seconds: float = 0.0
    # Why the pass stopped: "unreachable" (retryable), "ambiguous" (no answer after sending) or
    # "refused" (a permanent error outside a batch's rows); None when it finished.
    error_kind: str | None = None


@dataclass(frozen=True, slots=True)
class _Shaped:
    """A batch as it goes upstream: its block, its insert token, the rows refused before sending."""
    block: Block
    token: str
    refused: list[Refused]


@dataclass(frozen=True, slots=True)
class _Target:
    """One upstream table, as this pass sends to it."""
    plan: TablePlan
    deduplicates: bool  # a repeated insert token is dropped there
    distributed: bool


class SyncJob:
    """Forwards what is stored to the upstream; never runs twice at once."""

    def __init__(self, writer: StorageWriter, upstream: Callable[[], Upstream], *, gateway_id: str,
                 batch_rows: int, interval_seconds: float, clock: Callable[[], int],
                 set_deduplication_window: bool = True) -> None:
        self._writer = writer
        self._connect = upstream
        self._upstream: Upstream | None = None
        self._gateway_id = gateway_id
        self._batch_rows = batch_rows
        self._interval_seconds = interval_seconds
        self._clock = clock
        self._set_dedup_window = set_deduplication_window
        self._lock = asyncio.Lock()
        self._failures = 0
        self._not_before = 0.0
        self._reported_problems: list[str] = []
        self._window_refused: set[str] = set()  # tables whose dedup window the server would not set
        self.last_result: PassResult | None = None
        self.last_success_ms: int | None = None  # when a pass last finished without error
        # Told every pass's result (metrics, status history), on the event loop.
        self.on_pass: Callable[[PassResult], None] | None = None

    async def run_scheduled(self) -> None:
        """The scheduler's entry: skip while backing off after failures."""
        if time.monotonic() < self._not_before:
            return
        await self.run_once()

    async def run_once(self, progress: Progress | None = None,
                       max_batches: int | None = None) -> PassResult:
        """Send every table's backlog now (or `max_batches` batches); returns what was sent."""
        async with self._lock:
            result = PassResult()
            started = time.monotonic()
            delay = 0.0
            batches = 0
            try:
                targets = await asyncio.to_thread(self._targets)
                result.problems = [problem for target in targets.values() for problem in target.plan.problems]
                self._report(result.problems)
                # A pass forwards what is stored as it begins; rows stored meanwhile go with the next
                # one, so a site sending as fast as the pass forwards cannot keep it on one table.
                until = await asyncio.to_thread(self._newest_seqs)
                for table in TABLE_ORDER:
                    target = targets[table]
                    if target.plan.problems:
                        continue
                    budget = None if max_batches is None else max_batches - batches
                    batches += await self._send_table(table, target, result, budget, until[table], progress)
                self._failures = 0
            except UpstreamError as exc:
                self._failures += 1
                delay = min(_MAX_BACKOFF_SECONDS, self._interval_seconds * 2 ** self._failures)
                self._not_before = time.monotonic() + delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter
                result.error = str(exc)[:500]
                result.error_kind = "ambiguous" if exc.ambiguous else "unreachable" if exc.retryable else "refused"
                self._drop_connection()
            result.finished_at_ms = self._clock()
            result.seconds = time.monotonic() - started
            if result.error is None:
                self.last_success_ms = result.finished_at_ms
            _log_pass(result, delay)
            self.last_result = result
            if self.on_pass is not None:
                self.on_pass(result)
            return result

    def _report(self, problems: list[str]) -> None:
        if problems != self._reported_problems:
            for problem in problems:
                log.error("upstream table skipped until fixed: %s", problem)
            if not problems and self._reported_problems:
                log.info("upstream tables fixed: forwarding to all of them again")
            self._reported_problems = problems

    async def _send_table(self, table: str, target: _Target, result: PassResult, budget: int | None,
                          until_seq: int, progress: Progress | None) -> int:
        """Send `table`'s batches (at most `budget`, none past `until_seq` but those already
        pending); returns how many were sent."""
        if budget == 0:
            return 0
        if table in SNAPSHOTTED:
            return await self._send_in_turn(table, target, result, budget, until_seq, progress)
        return await self._send_pipelined(table, target, result, budget, until_seq, progress)

    async def _send_in_turn(self, table: str, target: _Target, result: PassResult, budget: int | None,
                            until_seq: int, progress: Progress | None) -> int:
        """One batch after the other: a snapshotted table's next snapshot (its cancel rows) must
        see what the batch before it left upstream (`ledger.finish_batch`)."""
        sent = 0
        after = 0
        while budget is None or sent < budget:
            batch = await self._next_recorded(table, after, until_seq)
            if batch is None:
                break
            rows = await asyncio.to_thread(self._read, batch)
            refused = await self._insert(batch, rows, target)
            await _reported(self._finish(batch, refused, result), table, result, progress)
            sent += 1
            after = batch.id
        return sent

    async def _send_pipelined(self, table: str, target: _Target, result: PassResult, budget: int | None,
                              until_seq: int, progress: Progress | None) -> int:
        """Events and replay chunks: three things overlap (`bench/sync.py`).

        - A recorder keeps up to `_RECORDED_AHEAD` batches recorded ahead of the one being sent,
          so a writer busy for a few seconds (ingest commits, a checkpoint) does not hold the
          upstream idle: the batches recorded before it went busy are sent meanwhile.
        - The next batch is read from DuckDB, and usually shaped and encoded (`_prepare`), while
          one is on its way upstream.
        - A confirmed batch is marked done on the writer while the next ones are sent; the marks
          are writer calls, so they land in order, and progress is reported in that order.
        """
        recorded: asyncio.Queue[Batch | Exception | None] = asyncio.Queue(maxsize=_RECORDED_AHEAD)
        recorder = asyncio.ensure_future(self._record_ahead(table, budget, until_seq, recorded))
        reading = asyncio.ensure_future(self._take_and_prepare(recorded, target))
        finishing: collections.deque[asyncio.Future[None]] = collections.deque()
        sent = 0
        try:
            while (upcoming := await reading) is not None:
                batch, prepared = upcoming
                reading = asyncio.ensure_future(self._take_and_prepare(recorded, target))
                try:
                    refused = await self._insert(batch, prepared, target)
                finally:
                    if isinstance(prepared, _Shaped):
                        prepared.block.close()
                sent += 1
                finishing.append(asyncio.ensure_future(self._finish(batch, refused, result)))
                while finishing and finishing[0].done():
                    await _reported(finishing.popleft(), table, result, progress)
            await recorder
        except BaseException:
            # The first error is the one reported. Batches recorded but not sent stay pending, for
            # the next pass; the confirmed ones are marked done before the pass reports its failure
            # (their writer calls were queued before the failure's record). The read in flight is
            # cancelled with the recorder: it may be waiting for a batch the recorder, cancelled,
            # will never put.
            recorder.cancel()
            reading.cancel()
            unsettled: list[asyncio.Future[Any]] = [recorder, reading, *finishing]
            for future in unsettled:
                await _settled(future)
            _drop_prepared(reading)
            raise
        while finishing:
            await _reported(finishing.popleft(), table, result, progress)
        return sent

    async def _record_ahead(self, table: str, budget: int | None, until_seq: int,
                            recorded: asyncio.Queue[Batch | Exception | None]) -> None:
        """Put the table's batches into `recorded` in order (pending ones first, then new ones),
        then None; an error ends the sequence in its place."""
        after = 0
        count = 0
        try:
            while budget is None or count < budget:
                batch = await self._next_recorded(table, after, until_seq)
                if batch is None:
                    break
                await recorded.put(batch)
                after = batch.id
                count += 1
        except Exception as exc:  # noqa: BLE001 - not caught: the sender raises it when it comes to it
            await recorded.put(exc)
            return
        await recorded.put(None)

    async def _take_and_prepare(self, recorded: asyncio.Queue[Batch | Exception | None],
                                target: _Target) -> tuple[Batch, pa.Table | _Shaped] | None:
        """The next recorded batch, prepared to send (`_prepare`), or None after the last."""
        batch = await recorded.get()
        if isinstance(batch, Exception):
            raise batch
        if batch is None:
            return None
        preparing = asyncio.ensure_future(asyncio.to_thread(self._prepare, batch, target))
        try:
            return batch, await asyncio.shield(preparing)
        except asyncio.CancelledError:
            # A thread cannot be stopped: the pass waits for it and lets go of what it made (an
            # encoded block's temporary file), so nothing of a pass runs on or stays behind.
            await _settled(preparing)
            _drop_prepared(preparing)
            raise

    async def _next_recorded(self, table: str, after_id: int, until_seq: int) -> Batch | None:
        """The oldest pending batch recorded after batch `after_id`, else a new one recorded now
        of rows up to `until_seq`; None when there is neither."""
        batch = await asyncio.to_thread(self._pending_or_next_range, table, after_id, until_seq)
        if not isinstance(batch, tuple):
            return batch
        first, last = batch
        now = self._clock()
        return await self._writer.call(
            lambda store: ledger.record_batch(store, table, first, last, self._gateway_id, now))

    async def _insert(self, batch: Batch, rows: pa.Table | _Shaped, target: _Target) -> list[Refused]:
        """Send one batch (its rows, or the batch shaped already); returns its refused rows, or
        records the failure and raises it."""
        try:
            return await asyncio.to_thread(self._send, batch, rows, target)
        except UpstreamError as exc:
            message, ambiguous = str(exc), exc.ambiguous
            await self._writer.call(lambda store: ledger.record_failure(store, batch, message, ambiguous))
            raise

    async def _finish(self, batch: Batch, refused: list[Refused], result: PassResult) -> None:
        """Mark a confirmed batch done (with the quarantine of its refused rows) and count it."""
        done_at = self._clock()
        await self._writer.call(lambda store: ledger.finish_batch(store, batch, refused, done_at))
        result.sent_rows[batch.table] = result.sent_rows.get(batch.table, 0) + max(0, batch.row_count - len(refused))
        result.quarantined_rows += len(refused)

    # ---- worker thread ----------------------------------------------------------------------

    def _targets(self) -> dict[str, _Target]:
        upstream = self._connection()
        described = upstream.describe()
        targets = {}
        for table in TABLE_ORDER:
            found = described.get(table)
            if (found is not None and found.dedup_window == 0 and found.can_set_dedup_window and self._set_dedup_window
                    and table not in self._window_refused):
                found = self._set_window(upstream, found)
            plan = plan_table(table, canonical_schema(table), found, REQUIRED[table], upstream.database)
            targets[table] = _Target(plan, found is not None and found.dedup_window > 0,
                                     found is not None and found.distributed)
        return targets

    def _set_window(self, upstream: Upstream, table: UpstreamTable) -> UpstreamTable:
        try:
            upstream.set_deduplication_window(table.name)
        except UpstreamError as exc:
            if exc.retryable:
                raise
            self._window_refused.add(table.name)
            log.warning("cannot set non_replicated_deduplication_window on %s.%s (%s); reconciling by id "
                        "before every insert instead", upstream.database, table.name, exc)
            return table
        log.warning("set non_replicated_deduplication_window = %d on %s.%s, so a resent insert lands once "
                    "(upstream.set_deduplication_window = false forbids this)", DEDUPLICATION_WINDOW,
                    upstream.database, table.name)
        return dataclasses.replace(table, dedup_window=DEDUPLICATION_WINDOW)

    def _newest_seqs(self) -> dict[str, int]:
        reader = self._writer.reader()
        try:
            return ledger.newest_seqs(reader)
        finally:
            reader.close()

    def _pending_or_next_range(self, table: str, after_id: int, until_seq: int) -> Batch | tuple[int, int] | None:
        reader = self._writer.reader()
        try:
            limit = min(self._batch_rows, SNAPSHOT_BATCH_ROWS) if table in SNAPSHOTTED else self._batch_rows
            return (ledger.pending_batch(reader, table, after_id)
                    or ledger.next_range(reader, table, limit, until_seq))
        finally:
            reader.close()

    def _read(self, batch: Batch) -> pa.Table:
        reader = self._writer.reader()
        try:
            return ledger.read_batch(reader, batch)
        finally:
            reader.close()

    def _prepare(self, batch: Batch, target: _Target) -> pa.Table | _Shaped:
        """What can be done for a batch before its turn to be sent: read it and, when what goes
        upstream does not depend on the moment it goes (no insert time to set, no rows to look up
        there first), shape and encode it."""
        rows = self._read(batch)
        if target.plan.set_inserted_at or batch.ambiguous or not target.deduplicates:
            return rows
        upstream = self._connection()
        shaped = self._shape(upstream, batch, rows, target)
        return _Shaped(shaped.block.encoded_by(upstream), shaped.token, shaped.refused)

    def _send(self, batch: Batch, rows: pa.Table | _Shaped, target: _Target) -> list[Refused]:
        upstream = self._connection()
        shaped = rows if isinstance(rows, _Shaped) else self._shape(upstream, batch, rows, target)
        if not shaped.block.seqs:
            return shaped.refused
        return shaped.refused + _insert_isolating(upstream, batch.table, shaped.block, shaped.token, target.distributed)

    def _shape(self, upstream: Upstream, batch: Batch, rows: pa.Table, target: _Target) -> _Shaped:
        """The block to send for `batch` and its token: the rows the upstream's types can hold,
        without those the upstream already has when that must be looked up."""
        inserted_at = upstream.server_time_ms() if target.plan.set_inserted_at else None
        block, refused = fit(rows, target.plan, inserted_at, self._gateway_id)
        token = batch.token
        if batch.ambiguous or not target.deduplicates:
            unsent = self._not_yet_upstream(upstream, batch.table, block)
            if len(unsent.seqs) < len(block.seqs) and target.deduplicates:
                token = f"{token}:rest"  # the first attempt's token may be spent on part of the rows
            block = unsent
        return _Shaped(block, token, refused)

    def _not_yet_upstream(self, upstream: Upstream, table: str, block: Block) -> Block:
        if not block.seqs:
            return block
        keys = key_kinds(canonical_schema(table), ROW_KEYS[table])
        mine = row_keys(block.rows, keys)
        lookup = sorted({str(key[0]) for key in mine})
        projects = pc.unique(block.rows.column("project_id")).to_pylist()
        time_range = None
        if table in RECONCILE_TIME_COLUMN:
            column = RECONCILE_TIME_COLUMN[table]
            times = block.rows.column(column).cast(pa.timestamp("ms")).cast(pa.int64())
            bounds = pc.min_max(times).as_py()
            # A second either side: a `DateTime` column holds whole seconds.
            time_range = (column, int(bounds["min"]) - 1000, int(bounds["max"]) + 1000)
        held: set[tuple[object, ...]] = set()
        for start in range(0, len(lookup), _LOOKUP_CHUNK):
            held |= upstream.existing_keys(table, keys, lookup[start:start + _LOOKUP_CHUNK], projects, time_range)
        if not held:
            return block
        missing = pa.array([key not in held for key in mine], pa.bool_())
        return block.part(block.rows.filter(missing),
                          [seq for seq, keep in zip(block.seqs, missing.to_pylist(), strict=True) if keep])

    def _connection(self) -> Upstream:
        if self._upstream is None:
            try:
                self._upstream = self._connect()
            except Exception as exc:
                raise UpstreamError(f"cannot connect upstream: {exc}", retryable=True) from exc
        return self._upstream

    def _drop_connection(self) -> None:
        # chdb is one engine per process: keep it; HTTP clients reconnect on the next pass.
        if self._upstream is not None and not self._upstream.url.startswith("chdb://"):
            self._upstream.close()
            self._upstream = None

    def close(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
            self._upstream = None


async def _reported(done: Awaitable[None], table: str, result: PassResult, progress: Progress | None) -> None:
    """Wait for a batch's mark as done, then report the table's progress."""
    await done
    if progress is not None:
        progress(table, result.sent_rows.get(table, 0))


async def _settled(future: asyncio.Future[Any]) -> None:
    """Wait for `future` to end, its error (if any) taken as seen: another error is the one reported."""
    await asyncio.wait([future])
    if not future.cancelled():
        future.exception()


def _log_pass(result: PassResult, retry_in_seconds: float) -> None:
    """One line per pass: rows per table and seconds; one line per failure, its first line only."""
    sent = " ".join(f"{table}={rows}" for table, rows in result.sent_rows.items() if rows)
    quarantined = f", {result.quarantined_rows} quarantined" if result.quarantined_rows else ""
    if result.error is not None:
        first_line = result.error.strip().splitlines()[0][:200] if result.error.strip() else "unknown error"
        log.warning("sync failed after %.1fs (%s): %s; sent before it: %s%s; next attempt in about %.0fs",
                    result.seconds, result.error_kind, first_line, sent or "nothing", quarantined, retry_in_seconds)
    elif sent or quarantined:
        log.info("sync: %s%s in %.2fs", sent or "nothing", quarantined, result.seconds)
    else:
        log.debug("sync: nothing to send (%.2fs)", result.seconds)


def _drop_prepared(settled: asyncio.Future[Any]) -> None:
    """Let go of what a settled read (a batch and what was prepared for it) or preparation made
    but will not send: its encoded rows."""
    if settled.cancelled() or settled.exception() is not None:
        return
    made = settled.result()
    prepared = made[1] if isinstance(made, tuple) else made
    if isinstance(prepared, _Shaped):
        prepared.block.close()


def _insert_isolating(upstream: Upstream, table: str, block: Block, token: str, distributed: bool) -> list[Refused]:
    """Insert; when the server refuses the data, halve until the refused rows are alone.

    Sub-blocks get tokens derived from the split path, so a retry after a crash mid-split
    splits the same way and sends the same tokens.
    """
    try:
        upstream.insert_arrow(table, block.encoded or block.rows, token, distributed=distributed,
                              read_as=block.read_as, computed=block.computed)
        return []
    except UpstreamError as exc:
        if exc.retryable:
            raise
        if len(block.seqs) == 1:
            return [Refused(block.seqs[0], str(exc), block.rows.to_pylist()[0])]
        middle = len(block.seqs) // 2
        first = block.part(block.rows.slice(0, middle), block.seqs[:middle])
        second = block.part(block.rows.slice(middle), block.seqs[middle:])
        return (_insert_isolating(upstream, table, first, f"{token}/a", distributed)
                + _insert_isolating(upstream, table, second, f"{token}/b", distributed))

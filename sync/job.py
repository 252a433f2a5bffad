"""One sync pass (SPEC §10): every table's backlog, batch by batch, exactly once.

For each table in order: take the pending batch or record a new one (ledger, writer thread), send
it from a worker thread (the event loop and the writer never wait for the network), then mark it
done. A refused batch is split until the refused rows are isolated; they go to the quarantine and
the rest is sent. A retryable failure ends the pass; the next pass waits out a capped,
jittered exponential backoff. After an ambiguous failure (timeout, lost response) the events the
server already holds are looked up by id before anything is resent.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from storage.store import Store
from storage.writer import StorageWriter
from sync import ledger
from sync import rows as upstream_rows
from sync.clickhouse import Upstream, UpstreamError

log = logging.getLogger(__name__)

_MAX_BACKOFF_SECONDS = 300.0
# A block to insert: a list of row lists, or a pyarrow.Table (pyarrow has no type stubs).
Rows = Any


@dataclass
class PassResult:
    sent_rows: dict[str, int] = field(default_factory=dict)
    quarantined_rows: int = 0
    error: str | None = None
    finished_at_ms: int = 0


class SyncJob:
    """Forwards what is stored to the upstream; never runs twice at once."""

    def __init__(self, writer: StorageWriter, upstream: Callable[[], Upstream], *, gateway_id: str,
                 batch_rows: int, interval_seconds: float, clock: Callable[[], int]) -> None:
        self._writer = writer
        self._connect = upstream
        self._upstream: Upstream | None = None
        self._gateway_id = gateway_id
        self._batch_rows = batch_rows
        self._interval_seconds = interval_seconds
        self._clock = clock
        self._lock = asyncio.Lock()
        self._failures = 0
        self._not_before = 0.0
        self.last_result: PassResult | None = None

    async def run_scheduled(self) -> None:
        """The scheduler's entry: skip while backing off after failures."""
        if time.monotonic() < self._not_before:
            return
        await self.run_once()

    async def run_once(self, progress: Callable[[str, int], None] | None = None,
                       max_batches: int | None = None) -> PassResult:
        """Send every table's backlog now (or `max_batches` batches); returns what was sent."""
        async with self._lock:
            result = PassResult()
            batches = 0
            try:
                for table in ledger.TABLE_ORDER:
                    while (max_batches is None or batches < max_batches) and await self._send_next(table, result):
                        batches += 1
                        if progress is not None:
                            progress(table, result.sent_rows.get(table, 0))
                self._failures = 0
            except UpstreamError as exc:
                self._failures += 1
                delay = min(_MAX_BACKOFF_SECONDS, self._interval_seconds * 2 ** self._failures)
                self._not_before = time.monotonic() + delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter
                result.error = str(exc)[:500]
                log.warning("upstream sync stopped (%s); next attempt in about %.0fs", result.error, delay)
                self._drop_connection()
            result.finished_at_ms = self._clock()
            self.last_result = result
            return result

    async def _send_next(self, table: str, result: PassResult) -> bool:
        now = self._clock()
        batch = await self._writer.call(
            lambda store: ledger.next_batch(store, table, self._batch_rows, self._gateway_id, now))
        if batch is None:
            return False
        try:
            refused = await asyncio.to_thread(self._send, batch)
        except UpstreamError as exc:
            message, ambiguous = str(exc), exc.ambiguous
            await self._writer.call(lambda store: ledger.record_failure(store, batch, message, ambiguous))
            raise
        done_at = self._clock()

        def finish(store: Store) -> None:
            if refused:
                ledger.quarantine(store, table, refused, done_at)
            ledger.mark_done(store, batch, done_at)

        await self._writer.call(finish)
        result.sent_rows[table] = result.sent_rows.get(table, 0) + batch.row_count - len(refused)
        result.quarantined_rows += len(refused)
        return True

    # ---- worker thread ----------------------------------------------------------------------

    def _send(self, batch: ledger.Batch) -> list[tuple[int, str, Any]]:
        upstream = self._connection()
        seqs, rows = self._rows_of(batch)
        if batch.ambiguous and batch.table == "events":
            # The last attempt may have landed: send only what the server does not hold.
            assert isinstance(rows, pa.Table)
            held = upstream.existing_event_ids(rows.column("id").to_pylist())
            missing = pc.invert(pc.is_in(rows.column("id"), value_set=pa.array(sorted(held), pa.string())))
            if not held:
                return _insert_isolating(upstream, batch.table, seqs, rows, batch.token)
            seqs = [seq for seq, keep in zip(seqs, missing.to_pylist(), strict=True) if keep]
            rows = rows.filter(missing)
            if not seqs:
                return []
            return _insert_isolating(upstream, batch.table, seqs, rows, f"{batch.token}:rest")
        return _insert_isolating(upstream, batch.table, seqs, rows, batch.token)

    def _rows_of(self, batch: ledger.Batch) -> tuple[list[int], Rows]:
        if batch.snapshot is not None:
            return ([batch.first_seq] * len(batch.snapshot),
                    [upstream_rows.insertable(batch.table, row) for row in batch.snapshot])
        # Rows that never change are read straight into Arrow, in the upstream's columns.
        reader = self._writer.reader()
        try:
            table = reader.sql(upstream_rows.arrow_select(batch.table), params={
                "gateway": self._gateway_id, "first": batch.first_seq, "last": batch.last_seq}).to_arrow_table()
        finally:
            reader.close()
        seqs = table.column("seq").to_pylist()
        return seqs, table.drop_columns(["seq"])

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


def _insert_isolating(upstream: Upstream, table: str, seqs: list[int], rows: Rows,
                      token: str) -> list[tuple[int, str, Any]]:
    """Insert; when the server refuses the data, halve until the refused rows are alone.

    Sub-blocks get tokens derived from the split path, so a retry after a crash mid-split
    splits the same way and sends the same tokens.
    """
    try:
        if isinstance(rows, pa.Table):
            upstream.insert_arrow(table, rows, token)
        else:
            upstream.insert(table, rows, token)
        return []
    except UpstreamError as exc:
        if exc.retryable:
            raise
        if len(seqs) == 1:
            row = rows.to_pylist()[0] if isinstance(rows, pa.Table) else rows[0]
            return [(seqs[0], str(exc), row)]
        middle = len(seqs) // 2
        first, second = ((rows.slice(0, middle), rows.slice(middle)) if isinstance(rows, pa.Table)
                         else (rows[:middle], rows[middle:]))
        return (_insert_isolating(upstream, table, seqs[:middle], first, f"{token}/a")
                + _insert_isolating(upstream, table, seqs[middle:], second, f"{token}/b"))

"""Which ids a table may hold among its recent rows: Bloom filters that spare the writer reads.

Events (the duplicate check, docs/contract.md §8): a re-sent event is found by its id among the
events received inside the duplicate window. Asking DuckDB means reading the id of every event
in that window on every commit: about 150 ms per commit once a busy site holds 20 million of
them, a quarter of its throughput. The filters answer "never stored" for almost every new id
without reading the store; only the ids they cannot rule out (the re-sent ones, and about one
in a hundred thousand others) are looked up in DuckDB, which stays the only judge.

Sessions (`Store._merge_sessions`): a commit merges the sessions it touches into their stored
rows. Each segment also knows the first `seq` written while it took ids, so a session's stored
row is looked for only among rows written since the newest segment that may hold its id
(`newest_first_seq`), and a session no segment holds is new.

The filters never forget an id the store holds: they are built from the store when it opens,
and every id written afterwards is added inside its transaction, before the commit (an id
added by a commit that then fails only costs a lookup). Ids are filed in segments in the order
they arrived; a segment is dropped once all of its ids are older than the window. Each id costs
4 bytes (32 bits, 12 probes: about one false "maybe" per million ids per segment).

Profiles (`storage.profiles`): profiles are never dropped, so their filter has no window and
holds every profile id written; the writer rebuilds it from the store when rewrites have made it
twice the profiles' number (`StoredProfiles`).

DuckDB's `hash()` of the key (the UUID; a profile's project and id) gives each id its 64 bits,
both when the filters are built from the store and for each commit's candidates, so the two
always agree.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import duckdb
import numpy as np

log = logging.getLogger(__name__)

_BITS_PER_ID = 32
_PROBES = 12
_STEPS = np.arange(_PROBES, dtype=np.uint32)
# A segment holds this many ids at least; a busier window gets larger segments (a quarter of the
# ids held when the segment is opened, up to the maximum), so a lookup probes a handful of them.
_MIN_SEGMENT_IDS = 1 << 18
_MAX_SEGMENT_IDS = 1 << 21
# Many ids at once (the store's, when it opens) are set 64k at a time, to keep the probe arrays
# small, into a slice of 2^24 bits at a time (`_Segment._set_in_slices`).
_BUILD_CHUNK = 1 << 16
_BUILD_SLICE_BITS = 1 << 24


def _probe_positions(hashes: np.ndarray, bit_mask: np.uint32) -> np.ndarray:
    """The bit positions of each id (one row per id): double hashing over its two 32-bit halves."""
    low = (hashes & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    high = (hashes >> np.uint64(32)).astype(np.uint32) | np.uint32(1)
    positions: np.ndarray = (low[:, None] + _STEPS[None, :] * high[:, None]) & bit_mask
    return positions


def _segment_size(ids_held: int) -> int:
    """Ids per new segment: a quarter of those held, as a power of two (a mask finds a bit)."""
    return min(max(1 << (ids_held // 4).bit_length(), _MIN_SEGMENT_IDS), _MAX_SEGMENT_IDS)


@dataclass(slots=True)
class _Segment:
    bits: np.ndarray  # uint8; bit p of the filter is bit (p & 7) of byte (p >> 3)
    capacity: int
    count: int = 0
    newest_received_ms: int = 0
    # The smallest `seq` of the rows filed here: a row written while this segment took ids has
    # a seq at least this (seqs only grow, also when a row is rewritten).
    first_seq: int = 2**63 - 1

    @classmethod
    def empty(cls, capacity: int) -> _Segment:
        return cls(np.zeros(capacity * _BITS_PER_ID // 8, np.uint8), capacity)

    @property
    def bit_mask(self) -> np.uint32:
        return np.uint32(self.capacity * _BITS_PER_ID - 1)

    def may_hold(self, hashes: np.ndarray) -> np.ndarray:
        positions = _probe_positions(hashes, self.bit_mask)
        set_bits = (self.bits[positions >> 3] >> (positions & 7).astype(np.uint8)) & 1
        held: np.ndarray = set_bits.all(axis=1)
        return held

    def add(self, hashes: np.ndarray, received_ms: int, first_seq: int) -> None:
        if len(hashes) >= _BUILD_CHUNK:
            self._set_in_slices(hashes)
        else:
            self._set_bit_by_bit(hashes)
        self.count += len(hashes)
        self.newest_received_ms = max(self.newest_received_ms, received_ms)
        self.first_seq = min(self.first_seq, first_seq)

    def _set_bit_by_bit(self, hashes: np.ndarray) -> None:
        positions = _probe_positions(hashes, self.bit_mask).ravel()
        byte = positions >> 3
        bit = (positions & 7).astype(np.uint8)
        # One pass per bit of a byte: within a pass every write to a byte sets the same bit, so
        # repeated bytes in one fancy-indexed update cannot lose each other's bits.
        for number in range(8):
            self.bits[byte[bit == number]] |= np.uint8(1 << number)

    def _set_in_slices(self, hashes: np.ndarray) -> None:
        """Many ids at once (when the store opens): each slice of the bit array is set as one
        byte per bit, then packed into it; slices keep that temporary array to 16 MiB."""
        total_bits = self.capacity * _BITS_PER_ID
        for first in range(0, total_bits, _BUILD_SLICE_BITS):
            flags = np.zeros(min(_BUILD_SLICE_BITS, total_bits - first), np.bool_)
            for start in range(0, len(hashes), _BUILD_CHUNK):
                positions = _probe_positions(hashes[start:start + _BUILD_CHUNK], self.bit_mask).ravel()
                if total_bits > len(flags):
                    positions = positions[(positions >= first) & (positions < first + len(flags))] - first
                flags[positions] = True
            self.bits[first // 8:(first + len(flags)) // 8] |= np.packbits(flags, bitorder="little")


class RecentIds:
    """Bloom filters over the ids of one table's rows written inside a window of time (or ever,
    without a window)."""

    def __init__(self, window_ms: int | None) -> None:
        self.window_ms = window_ms
        self._segments: list[_Segment] = []
        self._next_segment_ids = _MIN_SEGMENT_IDS

    @classmethod
    def from_store(cls, connection: duckdb.DuckDBPyConnection, window_ms: int | None, now_ms: int,
                   table: str = "events", written_at: str = "received_at", key: str = "id") -> RecentIds:
        """The filters of every row of `table` whose `written_at` is inside the window before `now_ms`
        (or before the newest row's, if that is earlier: rows written with a clock that has
        since moved on must not be missed); of every row without a window. A row is filed by
        the `hash()` of `key` (its SQL arguments)."""
        started = time.monotonic()
        recent = cls(window_ms)
        oldest = -1  # no window: every row (the filter compares this as epoch ms)
        if window_ms is not None:
            [(newest,)] = connection.execute(f"SELECT epoch_ms(max({written_at})) FROM {table}").fetchall()  # noqa: S608
            oldest = min(now_ms, newest if newest is not None else now_ms) - window_ms
        inside = f"WHERE {written_at} >= epoch_ms({oldest}::BIGINT)" if window_ms is not None else ""
        [(total,)] = connection.execute(f"SELECT count(*) FROM {table} {inside}").fetchall()  # noqa: S608
        recent._next_segment_ids = _segment_size(total)
        # Rows are stored in the order they were written (rewritten rows are appended), so the
        # segments file ids by time; each segment's bounds come from its rows whatever the order.
        reader = connection.sql(
            f"""SELECT hash({key}) AS id_hash, epoch_ms({written_at}) AS written_ms, seq
                FROM {table} {inside}""",  # noqa: S608 - fixed names
        ).to_arrow_reader(_BUILD_CHUNK * 8)
        for batch in reader:
            written, seqs = batch.column(1).to_numpy(), batch.column(2).to_numpy()
            recent.add(batch.column(0).to_numpy(), int(written.max()), int(seqs.min()))
        if total:
            held = f"of the last {window_ms // 3_600_000} hours" if window_ms is not None else "(all)"
            log.info("%s filter: %d ids %s in %.1fs (%d MiB)", table, total, held,
                     time.monotonic() - started, recent.memory_bytes >> 20)
        return recent

    @property
    def memory_bytes(self) -> int:
        return sum(segment.bits.nbytes for segment in self._segments)

    @property
    def count(self) -> int:
        """Ids filed (an id written twice counts twice)."""
        return sum(segment.count for segment in self._segments)

    def may_hold(self, hashes: np.ndarray, now_ms: int) -> np.ndarray:
        """For each id hash, whether the store may hold it (False: certainly not in the window)."""
        held: np.ndarray = self.newest_first_seq(hashes, now_ms) >= 0
        return held

    def newest_first_seq(self, hashes: np.ndarray, now_ms: int) -> np.ndarray:
        """For each id hash, a `seq` its newest row may have been written with at the earliest:
        the first seq of the newest segment that may hold it; -1 if none may (never written
        inside the window). A false "maybe" can name a segment newer than the row's, so a row
        not found from that seq on must be looked for again without it."""
        if self.window_ms is not None:
            self._forget_older_than(now_ms - self.window_ms)
        floors = np.full(len(hashes), -1, np.int64)
        for segment in reversed(self._segments):
            open_ids = floors < 0
            if not open_ids.any():
                break
            held = segment.may_hold(hashes[open_ids])
            floors[np.flatnonzero(open_ids)[held]] = segment.first_seq
        return floors

    def add(self, hashes: np.ndarray, received_ms: int, first_seq: int = 0) -> None:
        """File ids being written (with seqs of at least `first_seq`)."""
        start = 0
        while start < len(hashes):
            segment = self._writable_segment()
            taken = hashes[start:start + segment.capacity - segment.count]
            segment.add(taken, received_ms, first_seq)
            start += len(taken)

    def _writable_segment(self) -> _Segment:
        if not self._segments or self._segments[-1].count >= self._segments[-1].capacity:
            self._segments.append(_Segment.empty(self._next_segment_ids))
            self._next_segment_ids = _segment_size(self.count)
        return self._segments[-1]

    def _forget_older_than(self, oldest_ms: int) -> None:
        self._segments = [s for s in self._segments if s.newest_received_ms >= oldest_ms]

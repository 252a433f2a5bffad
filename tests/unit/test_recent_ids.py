"""The duplicate check's pre-filter: never "not stored" for a stored id, rarely "maybe" otherwise."""

from __future__ import annotations

import uuid

import duckdb
import numpy as np
import pyarrow as pa

from storage.recent_ids import RecentIds

HOUR_MS = 3_600_000
NOW_MS = 1_760_000_000_000


def _random_hashes(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**64 - 1, size=count, dtype=np.uint64)


def test_every_added_id_may_be_held_and_few_others_are() -> None:
    recent = RecentIds(window_ms=120 * HOUR_MS)
    added = _random_hashes(700_000, seed=1)  # more than one segment of the smallest size
    for start in range(0, len(added), 2000):
        recent.add(added[start:start + 2000], NOW_MS)
    assert recent.may_hold(added, NOW_MS).all()
    others = recent.may_hold(_random_hashes(200_000, seed=2), NOW_MS)
    # About one in a million per full segment; ten in 200k would mean the filter is broken.
    assert others.sum() < 10


def test_ids_older_than_the_window_are_forgotten() -> None:
    recent = RecentIds(window_ms=2 * HOUR_MS)
    old = _random_hashes(1 << 18, seed=3)  # fills the first segment, so the next ids start another
    new = _random_hashes(1000, seed=4)
    recent.add(old, NOW_MS - 3 * HOUR_MS)
    recent.add(new, NOW_MS)
    assert recent.may_hold(new, NOW_MS).all()
    assert recent.may_hold(old, NOW_MS).sum() < 10
    assert recent.memory_bytes == (1 << 18) * 4


def test_built_from_the_store_it_holds_what_the_window_holds() -> None:
    connection = duckdb.connect()
    connection.execute("CREATE TABLE events (seq BIGINT, id UUID, received_at TIMESTAMP)")
    inside = [str(uuid.uuid4()) for _ in range(5000)]
    outside = [str(uuid.uuid4()) for _ in range(5000)]
    rows = pa.table({
        "id": inside + outside,
        "received_ms": [NOW_MS - HOUR_MS] * len(inside) + [NOW_MS - 10 * HOUR_MS] * len(outside),
    })
    connection.register("seed", rows)
    connection.execute("INSERT INTO events SELECT row_number() OVER (), id::UUID, epoch_ms(received_ms) FROM seed")

    recent = RecentIds.from_store(connection, window_ms=5 * HOUR_MS, now_ms=NOW_MS)

    def hashes(ids: list[str]) -> np.ndarray:
        connection.register("ids", pa.table({"id": ids}))
        return connection.sql("SELECT hash(id::UUID) FROM ids").to_arrow_table().column(0).to_numpy()

    assert recent.may_hold(hashes(inside), NOW_MS).all()
    assert recent.may_hold(hashes(outside), NOW_MS).sum() < 5


def test_the_newest_segment_that_may_hold_an_id_gives_its_first_seq() -> None:
    recent = RecentIds(window_ms=120 * HOUR_MS)
    early, late = _random_hashes(1 << 18, seed=5), _random_hashes(1000, seed=6)
    recent.add(early, NOW_MS, first_seq=100)  # fills the first segment
    recent.add(late, NOW_MS, first_seq=900_000)
    recent.add(early[:10], NOW_MS, first_seq=950_000)  # written again: now in the second segment too
    floors = recent.newest_first_seq(np.concatenate([early[:20], late, _random_hashes(1000, seed=7)]), NOW_MS)
    assert floors[:10].tolist() == [900_000] * 10
    assert floors[10:20].tolist() == [100] * 10
    assert (floors[20:1020] == 900_000).all()
    assert (floors[1020:] == -1).sum() > 990


def test_many_ids_at_once_are_set_slice_by_slice_and_all_held() -> None:
    from storage.recent_ids import _Segment

    segment = _Segment.empty(1 << 20)  # 2^25 bits: two slices of the bulk path
    ids = _random_hashes(300_000, seed=8)
    segment.add(ids[:200_000], NOW_MS, first_seq=1)  # one call: the bulk path
    for start in range(200_000, 300_000, 2000):  # the per-commit path
        segment.add(ids[start:start + 2000], NOW_MS, first_seq=7)
    assert segment.may_hold(ids).all()
    assert segment.may_hold(_random_hashes(200_000, seed=9)).sum() < 5
    assert (segment.count, segment.first_seq) == (300_000, 1)

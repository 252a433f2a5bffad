"""The session-start keys in a real diskcache folder (storage.locks)."""

from __future__ import annotations

import time
from pathlib import Path

from storage.locks import SessionStartLocks


def test_claims_of_one_commit_are_taken_together_and_only_once(tmp_path: Path) -> None:
    locks = SessionStartLocks(str(tmp_path), expire_seconds=3600)
    try:
        assert locks.claim_all([("p", "a"), ("p", "b")]) == [("p", "a"), ("p", "b")]
        assert locks.claim_all([("p", "b"), ("p", "c"), ("q", "a")]) == [("p", "c"), ("q", "a")]
        assert not locks.claim("p", "a")
        locks.release("p", "a")
        assert locks.claim_all([("p", "a")]) == [("p", "a")]
    finally:
        locks.close()


def test_expired_keys_are_forgotten_and_can_be_claimed_again(tmp_path: Path) -> None:
    locks = SessionStartLocks(str(tmp_path), expire_seconds=0.05)
    try:
        assert locks.claim_all([("p", "a"), ("p", "b")]) == [("p", "a"), ("p", "b")]
        assert locks.forget_expired() == 0  # not yet expired
        time.sleep(0.1)
        assert locks.forget_expired() == 2
        assert locks.claim_all([("p", "a")]) == [("p", "a")]
    finally:
        locks.close()

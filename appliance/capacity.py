"""Disk capacity guard (docs/contract.md §9): refuse new events before the disk is full, not after.

Input: the storage settings. Output: `None` when there is room, else the reason there is not.
Readings are cached for a second so the check costs nothing on the request path; the gateway
recovers by itself as soon as space returns (a later reading).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_READING_TTL_SECONDS = 1.0
# The free-space floor is at most this fraction (1/20 = 5%) of the volume: the default 256 MiB
# would refuse everything on a small data volume, and 5% still leaves room for a checkpoint.
_FLOOR_SHARE_OF_VOLUME = 20


class DiskGuard:
    """Answers "may we store more?" from the database's size and the volume's free space."""

    def __init__(self, database_path: str, *, max_disk_bytes: int, min_free_disk_bytes: int) -> None:
        self._files = [Path(database_path), Path(database_path + ".wal")]
        self._folder = Path(database_path).parent
        self._max_disk_bytes = max_disk_bytes
        self._min_free_disk_bytes = min_free_disk_bytes
        self._reading: tuple[float, str | None] = (0.0, None)

    def used_bytes(self) -> int:
        """Bytes the database files take now."""
        total = 0
        for file in self._files:
            try:
                total += file.stat().st_size
            except FileNotFoundError:
                continue
        return total

    def free_bytes(self) -> int:
        """Bytes free for the gateway on the storage volume."""
        stats = os.statvfs(self._folder)
        return stats.f_bavail * stats.f_frsize

    def problem(self) -> str | None:
        """Why new events cannot be stored now, or None."""
        checked_at, reason = self._reading
        now = time.monotonic()
        if now - checked_at < _READING_TTL_SECONDS:
            return reason
        reason = self._measure()
        self._reading = (now, reason)
        return reason

    def _measure(self) -> str | None:
        if self._max_disk_bytes:
            used = self.used_bytes()
            if used > self._max_disk_bytes:
                return f"storage uses {used} bytes, above storage.max_disk_bytes={self._max_disk_bytes}"
        stats = os.statvfs(self._folder)
        free = stats.f_bavail * stats.f_frsize
        floor = min(self._min_free_disk_bytes, stats.f_blocks * stats.f_frsize // _FLOOR_SHARE_OF_VOLUME)
        if free < floor:
            return f"only {free} bytes free on the storage volume (floor {floor})"
        return None

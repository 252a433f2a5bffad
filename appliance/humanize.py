"""Numbers as operators read them, for the `status` command and the status page."""

from __future__ import annotations


def duration(seconds: float | None, separator: str = "") -> str:
    """`3m07s`, `2h05m`, `4d1h` (parts joined by `separator`); `-` when unknown."""
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{separator}{hours}h"
    return f"{hours}h{separator}{minutes:02d}m" if hours else f"{minutes}m{separator}{secs:02d}s"


def byte_size(count: int) -> str:
    """`512 B`, `3 MiB`, `1.2 TiB`."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"

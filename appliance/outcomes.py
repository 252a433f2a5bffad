"""Every event gets exactly one outcome (docs/contract.md §3.4).

The closed set: `accepted` (stored now), `duplicate` (stored earlier, §8), or `rejected` with
one of the reasons below. For every request, accepted + duplicates + rejected == items.

- `validation`: the client must fix the row; resending it unchanged fails again.
- `internal`: the gateway could not store the row; nothing of it is stored, resending is safe.
- `bot`: a crawler's event, acknowledged and counted but not stored (docs/contract.md §6.1).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Reason(enum.StrEnum):
    VALIDATION = "validation"
    INTERNAL = "internal"
    BOT = "bot"


@dataclass(frozen=True, slots=True)
class Rejection:
    """One row that was not stored, and why."""

    index: int
    reason: Reason
    error: str

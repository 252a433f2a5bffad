"""systemd's notification protocol (`sd_notify`), with a plain datagram socket.

Input: `NOTIFY_SOCKET` (and `WATCHDOG_USEC` / `WATCHDOG_PID`) from the environment systemd
gives a `Type=notify` service. Output: `READY=1`, `STATUS=…`, `STOPPING=1`, `WATCHDOG=1`
datagrams. Outside systemd (no `NOTIFY_SOCKET`) every call does nothing. Sending never raises:
a lost notification must not take the gateway down.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    """Sends notifications to the socket named at construction (None: outside systemd)."""

    def __init__(self, address: str | None) -> None:
        # "@name" is an abstract socket: its real name starts with a NUL byte.
        self._address = "\0" + address[1:] if address and address.startswith("@") else address

    @classmethod
    def from_environment(cls) -> Notifier:
        return cls(os.environ.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *fields: str) -> bool:
        """Send `KEY=value` fields as one datagram; True when it was sent."""
        if self._address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall("\n".join(fields).encode())
        except OSError as exc:
            log.warning("cannot notify systemd at %s: %s", os.environ.get("NOTIFY_SOCKET"), exc)
            return False
        return True


def watchdog_interval_seconds() -> float | None:
    """Half of systemd's `WatchdogSec` when it watches this process, else None."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000 / 2

"""Connection limits around uvicorn's HTTP protocol: slow, idle and half-closed clients.

Input: `ServerSettings` (header timeout and size, connection caps). Output: an `asyncio.Protocol`
class for `uvicorn.Config(http=...)`, uvicorn's httptools protocol with these additions:

- **Header deadline.** A connection must finish a request's line and headers within
  `header_timeout_seconds` of its start (or of the end of its previous answer); otherwise it is
  closed (`408` if it had started one). A socket that never sends a byte is closed too.
- **Header size.** More than `max_header_bytes` before the headers end → `431`, then closed; a
  client cannot make the server hold megabytes of an unfinished head.
- **Connection caps.** Past `max_connections` open connections, or `max_connections_per_client`
  from one address (trusted proxies exempt), a new connection gets `503` with `Retry-After` and
  is closed at once, and a warning says so (at most every 10 s, with the count refused since).
- **Half-close.** A client that sends a complete request and then shuts down its sending side
  still gets the answer (the rows are committed either way, so the answer must not be lost);
  the connection closes after it. A half-close in the middle of a request is a disconnect.
- **Dual stack.** On an IPv6 listener an IPv4 client appears as `::ffff:a.b.c.d`; the address is
  mapped back to `a.b.c.d` before anything (admin networks, trusted proxies, geo) sees it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from appliance.enrich.client_ip import IPNetwork, normalize_ip, parse_networks
from appliance.settings import ServerSettings

log = logging.getLogger("appliance.connections")

_CAP_LOG_INTERVAL_SECONDS = 10.0


def _answer(status: str, message: str, extra_headers: str = "") -> bytes:
    """A whole HTTP answer, written straight to the transport: no request exists to answer through."""
    code, _, phrase = status.partition(" ")
    body = json.dumps({"status": int(code), "error": phrase, "message": message}).encode()
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"{extra_headers}connection: close\r\n\r\n"
    ).encode() + body


_REFUSED = _answer("503 Service Unavailable", "too many open connections; retry later", "retry-after: 5\r\n")
_HEADERS_TOO_LARGE = _answer("431 Request Header Fields Too Large", "request line and headers are too large")
_HEADER_TIMEOUT = _answer("408 Request Timeout", "request headers did not arrive in time")


class _CapLog:
    """Rate-limited warnings about refused connections, shared by one server's connections."""

    def __init__(self) -> None:
        self.refused = 0
        self.logged_at = -_CAP_LOG_INTERVAL_SECONDS

    def refuse(self, reason: str) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self.logged_at >= _CAP_LOG_INTERVAL_SECONDS:
            log.warning("connection refused (503): %s; %d refused since the last such message", reason, self.refused)
            self.refused = 0
            self.logged_at = now


def guarded_protocol(server: ServerSettings) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with this server's connection limits (one class per server)."""
    per_client: dict[str, int] = {}
    cap_log = _CapLog()
    exempt: tuple[IPNetwork, ...] = parse_networks(server.trusted_proxies)

    class GuardedProtocol(HttpToolsProtocol):
        _counted_as: str | None = None
        _head_pending = True
        _head_bytes = 0
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if self.client is not None:
                self.client = (normalize_ip(self.client[0]) or self.client[0], self.client[1])
            host = self.client[0] if self.client else ""
            if len(self.connections) > server.max_connections:
                self._refuse(f"{len(self.connections) - 1} connections open (server.max_connections)")
                return
            if per_client.get(host, 0) >= server.max_connections_per_client and not _is_exempt(host):
                self._refuse(f"{host} has {per_client[host]} connections open (server.max_connections_per_client)")
                return
            per_client[host] = per_client.get(host, 0) + 1
            self._counted_as = host
            self._arm_head_timer()

        def _refuse(self, reason: str) -> None:
            cap_log.refuse(reason)
            self.transport.write(_REFUSED)
            self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head_timer()
            host = self._counted_as
            if host is not None:
                self._counted_as = None
                remaining = per_client.get(host, 1) - 1
                if remaining > 0:
                    per_client[host] = remaining
                else:
                    per_client.pop(host, None)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self.transport.is_closing():
                return
            if self._head_pending:
                self._head_bytes += len(data)
            super().data_received(data)
            # Checked after parsing: a chunk that finished the head may carry body bytes too.
            if self._head_pending and self._head_bytes > server.max_header_bytes and not self.transport.is_closing():
                self.transport.write(_HEADERS_TOO_LARGE)
                self.transport.close()

        def on_headers_complete(self) -> None:
            self._head_pending = False
            self._disarm_head_timer()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
                return  # closing, or a pipelined request already under way
            self._head_pending = True
            self._head_bytes = 0
            self._arm_head_timer()

        def eof_received(self) -> bool | None:  # type: ignore[override]
            cycle = self.cycle
            if cycle is not None and not cycle.more_body and not cycle.response_complete:
                # The request is complete and its answer on the way: keep the sending side open
                # for it, then close (keep-alive is over once the client stopped sending).
                cycle.keep_alive = False
                return True
            return None  # idle or mid-request: close, which the app sees as a disconnect

        def _arm_head_timer(self) -> None:
            self._disarm_head_timer()
            self._head_timer = self.loop.call_later(server.header_timeout_seconds, self._head_timeout)

        def _disarm_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if not self._head_pending or self.transport.is_closing():
                return
            if self._head_bytes:
                self.transport.write(_HEADER_TIMEOUT)
            self.transport.close()

    def _is_exempt(host: str) -> bool:
        if not exempt:
            return False
        try:
            address: Any = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in exempt)

    return GuardedProtocol

"""Which browser pages may send without the secret: a project's `allowed_origins` (docs/contract.md §3.1).

Input: the entries of `allowed_origins` (checked once, when settings load) and a request's
`Origin` header. Output: whether that origin is allowed. An entry is one of

- `"*"`: any page (any request that carries an `Origin` header, `null` included);
- `"null"`: pages without an origin of their own (`file://` kiosk pages, sandboxed frames);
- an origin, `scheme://host[:port]` (`https://kiosk.shop.example`, `http://10.0.0.5:8080`);
  without a scheme, `host[:port]` means that host over http or https;
- a wildcard `*.example.com` (with or without scheme and port): any subdomain, at any depth,
  of `example.com`, not `example.com` itself.

A missing port means the scheme's default port, as browsers leave it out of `Origin`. Matching
is exact otherwise: OpenPanel (apps/api/src/utils/auth.ts, `validateSdkRequest`) also strips
`www.` and matches wildcards as an unanchored regex, so `*.example.com` there also admits
`https://a.example.com.attacker.net`; here a wildcard only ever matches the end of the host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$|^\[[0-9a-f:.]+\]$")


class InvalidOrigin(ValueError):
    """An `allowed_origins` entry that cannot be matched; the message says why."""


@dataclass(frozen=True, slots=True)
class OriginPattern:
    """One entry: schemes it admits, its host (or the suffix after `*.`), its port."""

    schemes: frozenset[str]
    host: str
    port: int | None  # None: the scheme's default port
    wildcard: bool

    def matches(self, scheme: str, host: str, port: int) -> bool:
        if scheme not in self.schemes or port != (self.port or _DEFAULT_PORTS[scheme]):
            return False
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """A project's `allowed_origins`, parsed once; `allows(origin)` per request."""

    any_origin: bool
    null_origin: bool
    patterns: tuple[OriginPattern, ...]

    @classmethod
    def parse(cls, entries: list[str]) -> OriginPolicy:
        """Parse every entry; raises `InvalidOrigin` naming the first bad one by its position."""
        patterns = []
        any_origin = null_origin = False
        for position, entry in enumerate(entries):
            text = entry.strip().lower().rstrip("/")
            if text == "*":
                any_origin = True
            elif text == "null":
                null_origin = True
            else:
                try:
                    patterns.append(_parse_pattern(text))
                except InvalidOrigin as exc:
                    raise InvalidOrigin(f"[{position}]: {entry!r}: {exc}") from None
        return cls(any_origin, null_origin, tuple(patterns))

    @property
    def is_empty(self) -> bool:
        return not (self.any_origin or self.null_origin or self.patterns)

    def allows(self, origin: str | None) -> bool:
        """Whether a request with this `Origin` header may send without the secret."""
        if not origin:
            return False
        if self.any_origin:
            return True
        origin = origin.strip().lower()
        if origin == "null":
            return self.null_origin
        parsed = _split_origin(origin)
        if parsed is None:
            return False
        return any(pattern.matches(*parsed) for pattern in self.patterns)


def _parse_pattern(text: str) -> OriginPattern:
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    elif scheme not in _DEFAULT_PORTS:
        raise InvalidOrigin("scheme must be http or https")
    if any(char in rest for char in "/?#@"):
        raise InvalidOrigin("an origin has no path, query or credentials: write scheme://host[:port]")
    host, port = _split_host_port(rest)
    if not _HOST.match(host):
        raise InvalidOrigin("not a host name, a *.domain wildcard or an address")
    wildcard = host.startswith("*.")
    return OriginPattern(
        schemes=frozenset({scheme} if scheme else _DEFAULT_PORTS),
        host=host.removeprefix("*.").rstrip("."),
        port=port,
        wildcard=wildcard,
    )


def _split_host_port(text: str) -> tuple[str, int | None]:
    host, sep, port_text = text.rpartition(":")
    if not sep or host.endswith(":") or (host.startswith("[") and not host.endswith("]")) or "]" in port_text:
        return text, None  # no port (an IPv6 literal's colons are inside its brackets)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidOrigin(f"port must be a number from 1 to 65535, got {port_text!r}")
    return host, int(port_text)


def _split_origin(origin: str) -> tuple[str, str, int] | None:
    """`(scheme, host, port)` of an `Origin` header value; None when it is not an http(s) origin."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    if parts.path or parts.query or parts.fragment:  # an origin is scheme, host and port only
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return parts.scheme, host.rstrip("."), port or _DEFAULT_PORTS[parts.scheme]

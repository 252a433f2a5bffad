"""Where in the app or site an event happened (docs/contract.md §6.3): `__path` → origin, path, query, hash.

Input: the raw `__path` (or `path`) value. Output: `origin` (`https://shop.example`), `path`
(`/cart`), the query as a dict and the hash with its `#` (`#pay`). A value that is neither an
absolute URL nor an absolute path is a screen name (`CheckoutScreen`) and is kept as the path,
with no origin. The rules follow OpenPanel's `parsePath` (`packages/common/src/url.ts`, WHATWG
`URL`): the origin leaves out a default port, a repeated query parameter keeps its last value.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import msgspec


class PageLocation(msgspec.Struct, frozen=True):
    origin: str = ""
    path: str = ""
    query: dict[str, str] = {}
    hash: str = ""

    @property
    def host(self) -> str:
        return (urlsplit(self.origin).hostname or "") if self.origin else ""


NO_LOCATION = PageLocation()


def parse_location(value: str) -> PageLocation:
    """Split a path or URL; screen names pass through."""
    value = value.strip()
    if not value:
        return NO_LOCATION
    lowered = value[:8].lower()
    if lowered.startswith(("http://", "https://")):
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError:  # e.g. a malformed IPv6 host; keep the text, lose nothing
            return PageLocation(path=value)
        origin = _origin(parts.scheme.lower(), parts.hostname or "", port) if parts.netloc else ""
        return PageLocation(origin, parts.path or "/", _query(parts.query), _hash(parts.fragment))
    if value.startswith("/"):
        rest, _, fragment = value.partition("#")
        path, _, query = rest.partition("?")
        return PageLocation("", path, _query(query), _hash(fragment))
    return PageLocation(path=value)


def _origin(scheme: str, host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" if port is None or port == default else f"{scheme}://{host}:{port}"


def _hash(fragment: str) -> str:
    # `URL.hash` keeps the `#`, and is empty for a bare `#`.
    return f"#{fragment}" if fragment else ""


def _query(text: str) -> dict[str, str]:
    # A repeated parameter keeps its last value, as OpenPanel's `parseSearchParams` does.
    return dict(parse_qsl(text, keep_blank_values=False))

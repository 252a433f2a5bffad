"""Where in the app or site an event happened (docs/contract.md §6.3): `__path` → origin, path, query, hash.

Input: the raw `__path` (or `path`) value. Output: `origin` (`https://shop.example`), `path`
(`/cart`), the query as a dict and the `#hash`. A value that is neither an absolute URL nor an
absolute path is a screen name (`CheckoutScreen`) and is kept as the path, with no origin.
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
        except ValueError:  # e.g. a malformed IPv6 host; keep the text, lose nothing
            return PageLocation(path=value)
        origin = f"{parts.scheme.lower()}://{parts.netloc.lower()}" if parts.netloc else ""
        return PageLocation(origin, parts.path or "/", _query(parts.query), parts.fragment)
    if value.startswith("/"):
        rest, _, fragment = value.partition("#")
        path, _, query = rest.partition("?")
        return PageLocation("", path, _query(query), fragment)
    return PageLocation(path=value)


def _query(text: str) -> dict[str, str]:
    # A repeated parameter keeps its first value, as URLSearchParams.get() does in browsers.
    query: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=False):
        query.setdefault(name, value)
    return query

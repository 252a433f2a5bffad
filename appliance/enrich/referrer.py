"""Where a visitor came from (docs/contract.md §6.3): `referrer`, `referrer_name`, `referrer_type`.

Input: the raw `__referrer` value, the page's location (to drop internal referrers and to read
`utm_source`/`ref`), and the referrer table. Output: the three referrer columns. The table maps
hosts to a source name and a type (`search`, `social`, `email`, `paid`, `ai`, ...); see
`referrers.json` for its origin and licence. A campaign parameter in the page's query wins over
the referrer's host, because it is what the marketer meant.
"""

from __future__ import annotations

import json
from importlib import resources
from urllib.parse import urlsplit

import msgspec

from appliance.enrich.location import PageLocation


class Referrer(msgspec.Struct, frozen=True):
    url: str = ""
    name: str = ""
    type: str = ""


NO_REFERRER = Referrer()
_CAMPAIGN_PARAMETERS = ("utm_source", "ref", "utm_referrer")


class ReferrerTable:
    """Host → (source name, type), looked up by host and then by each parent domain."""

    def __init__(self, hosts: dict[str, tuple[str, str]]) -> None:
        self._hosts = hosts
        # utm_source=google or ref=facebook name a source, not a host.
        self._names = {name.lower(): (name, kind) for name, kind in hosts.values()}

    @classmethod
    def bundled(cls) -> ReferrerTable:
        """The table shipped in `appliance/enrich/referrers.json`."""
        text = resources.files("appliance.enrich").joinpath("referrers.json").read_text(encoding="utf-8")
        data = json.loads(text)
        return cls({host: (name, kind) for host, (name, kind) in data["hosts"].items()})

    def by_host(self, host: str) -> tuple[str, str] | None:
        labels = host.lower().rstrip(".").split(".")
        for start in range(len(labels) - 1):
            match = self._hosts.get(".".join(labels[start:]))
            if match is not None:
                return match
        return None

    def by_source(self, source: str) -> tuple[str, str] | None:
        source = source.strip().lower()
        return self._names.get(source) or self.by_host(source)


def referrer_of(raw: str, page: PageLocation, table: ReferrerTable) -> Referrer:
    """The referrer columns of one event."""
    url = raw.strip().rstrip("/")
    host = _host(url)
    internal = bool(host) and host == page.host
    if internal:
        url, host = "", ""
    for parameter in _CAMPAIGN_PARAMETERS:
        source = page.query.get(parameter, "").strip()
        if source:
            name, kind = table.by_source(source) or (source, "")
            return Referrer(url, name, kind)
    if not host:
        return Referrer(url) if url else NO_REFERRER
    name, kind = table.by_host(host) or ("", "unknown")
    return Referrer(url, name, kind)


def _host(url: str) -> str:
    if not url:
        return ""
    try:
        return (urlsplit(url if "//" in url else f"//{url}").hostname or "").lower()
    except ValueError:
        return ""

"""Where a visitor came from (docs/contract.md §6.3): `referrer`, `referrer_name`, `referrer_type`.

Input: the raw `__referrer` value, the page's location (to drop internal referrers and to read
`utm_source`/`ref`), and the referrer table. Output: the three referrer columns. The table maps
hosts to a source name and a type (`search`, `social`, `email`, `paid`, `ai`, ...); see
`referrers.json` for its origin and licence. The rules are OpenPanel's (`parse-referrer.ts`,
`events.incoming-event.ts`), so a dashboard mixing gateway and direct traffic names sources alike.
"""

from __future__ import annotations

import json
from importlib import resources
from urllib.parse import urlsplit

import msgspec

from appliance.enrich.page_url import PageLocation


class Referrer(msgspec.Struct, frozen=True):
    url: str = ""
    name: str = ""
    type: str = ""


NO_REFERRER = Referrer()
_CAMPAIGN_PARAMETERS = ("utm_source", "ref", "utm_referrer")


class ReferrerTable:
    """Host → (source name, type), as OpenPanel looks referrers up (`parse-referrer.ts`)."""

    def __init__(self, hosts: dict[str, tuple[str, str]]) -> None:
        self._hosts = hosts
        # utm_source=Facebook names a source, not a host; the first entry of a name wins, as
        # OpenPanel's `Object.values(referrers).find(...)` does.
        self._names: dict[str, tuple[str, str]] = {}
        for name, kind in hosts.values():
            self._names.setdefault(name.lower(), (name, kind))

    @classmethod
    def bundled(cls) -> ReferrerTable:
        """The table shipped in `appliance/enrich/referrers.json`."""
        text = resources.files("appliance.enrich").joinpath("referrers.json").read_text(encoding="utf-8")
        data = json.loads(text)
        return cls({host: (name, kind) for host, (name, kind) in data["hosts"].items()})

    def by_host(self, host: str) -> tuple[str, str] | None:
        """The exact host, else the host without its first `www.` (OpenPanel's `parseReferrer`)."""
        return self._hosts.get(host) or self._hosts.get(host.replace("www.", "", 1))

    def by_source(self, source: str) -> tuple[str, str] | None:
        """A campaign source: a host, the host plus `.com`, or a source name (`getReferrerWithQuery`)."""
        return self._hosts.get(source) or self._hosts.get(f"{source}.com") or self._names.get(source)


def referrer_of(raw: str, page: PageLocation, table: ReferrerTable) -> Referrer:
    """The referrer columns of one event, by OpenPanel's rules (`events.incoming-event.ts`).

    A referrer on the page's own host is dropped. The campaign source (`utm_source`, else `ref`,
    else `utm_referrer`) names the source when present, a known one with its type; an unknown
    one is its own (lowercased) name and leaves the type to the referrer host's. An unknown
    referrer host is named by its URL, with an empty type.
    """
    url = raw.strip().rstrip("/")
    host = _host(url)
    if host and host == page.host:
        url, host = "", ""
    name, kind = "", ""
    if url:
        name, kind = table.by_host(host) or ("", "")
        name = name or url
    campaign = _campaign_source(page.query)
    if campaign:
        source_name, source_kind = table.by_source(campaign) or (campaign, "")
        name, kind = source_name, source_kind or kind
    return Referrer(url, name, kind) if url or name else NO_REFERRER


def _campaign_source(query: dict[str, str]) -> str:
    for parameter in _CAMPAIGN_PARAMETERS:
        if parameter in query:  # the first parameter present decides, even when it is blank
            return query[parameter].lower()
    return ""


def _host(url: str) -> str:
    # Like `new URL(url).hostname`: only an absolute URL (with a scheme) has a host.
    if "://" not in url:
        return ""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""

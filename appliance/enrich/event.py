"""One event's enrichment columns, from its properties and what the request told us.

Input: the request's `Agent` and the referrer table, then per event its raw and flattened
properties and the `Location` of its address. Output: `EventColumns`, the OpenPanel columns the
enrichment stages fill, plus the flat properties to store (with `__query.*` and `__hash` from the
page URL).
"""

from __future__ import annotations

from typing import Any

import msgspec

from appliance.enrich.geo import Location
from appliance.enrich.page_url import PageLocation, parse_location
from appliance.enrich.referrer import Referrer, ReferrerTable, referrer_of
from appliance.enrich.useragent import Agent, AgentKind

# Client-sent overrides of the parsed user agent (docs/contract.md §3.2), property → column.
AGENT_OVERRIDES = {
    "__os": "os",
    "__osVersion": "os_version",
    "__browser": "browser",
    "__browserVersion": "browser_version",
    "__device": "device",
    "__brand": "brand",
    "__model": "model",
}
_MAX_OVERRIDE_CHARS = 128


class EventColumns(msgspec.Struct, kw_only=True):
    properties: dict[str, str]
    path: str
    origin: str
    referrer: str
    referrer_name: str
    referrer_type: str
    country: str
    region: str
    city: str
    latitude: float | None
    longitude: float | None
    os: str
    os_version: str
    browser: str
    browser_version: str
    device: str
    brand: str
    model: str


class RequestEnrichment:
    """One request's enrichment: what is the same for all its events is computed once (the
    agent's columns), and each distinct page and referrer text is parsed once."""

    def __init__(self, agent: Agent, referrers: ReferrerTable) -> None:
        self._agent = agent
        self._referrers = referrers
        self._agent_columns = {
            "os": agent.os, "os_version": agent.os_version, "browser": agent.browser,
            "browser_version": agent.browser_version, "device": agent.device, "brand": agent.brand,
            "model": agent.model,
        }
        self._pages: dict[tuple[str, str], tuple[PageLocation, Referrer]] = {}

    def columns(self, properties: dict[str, Any], flat: dict[str, str], where: Location) -> EventColumns:
        """The enrichment columns of one event; its stored properties are `flat` (left as it is)
        plus the page's query and hash."""
        page, came_from = self._page(_text(properties.get("__path", properties.get("path"))),
                                     _text(properties.get("__referrer", properties.get("referrer"))))
        if page.query or page.hash:
            flat = dict(flat)
            for name, value in page.query.items():
                flat[f"__query.{name}"] = value
            if page.hash:
                flat["__hash"] = page.hash
        return EventColumns(
            properties=flat,
            path=page.path,
            origin=page.origin,
            referrer=came_from.url,
            referrer_name=came_from.name,
            referrer_type=came_from.type,
            country=where.country,
            region=where.region,
            city=where.city,
            latitude=where.latitude,
            longitude=where.longitude,
            **self._agent_columns_of(properties),
        )

    def _page(self, path: str, referrer: str) -> tuple[PageLocation, Referrer]:
        parsed = self._pages.get((path, referrer))
        if parsed is None:
            page = parse_location(path)
            parsed = self._pages[(path, referrer)] = (page, referrer_of(referrer, page, self._referrers))
        return parsed

    def _agent_columns_of(self, properties: dict[str, Any]) -> dict[str, str]:
        if self._agent.kind is AgentKind.SERVER or AGENT_OVERRIDES.keys().isdisjoint(properties):
            return self._agent_columns  # a server cannot claim to be a phone
        columns = dict(self._agent_columns)
        for name, column in AGENT_OVERRIDES.items():
            value = properties.get(name)
            if isinstance(value, str) and value.strip():
                columns[column] = value.strip()[:_MAX_OVERRIDE_CHARS]
        return columns


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""

"""Where an address is (docs/contract.md §6.2): a MaxMind-format City database, or the site's location.

Input: a client address. Output: country (ISO-2), region, city, latitude, longitude. The mmdb
is opened once, memory-mapped through the C extension; answers are cached per address across
requests. Private, loopback and link-local addresses have no public location: they get the
`[site]` location from the config, which is where a LAN device actually is.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import maxminddb
import msgspec

from appliance.settings import SiteSettings

_CACHE_LIMIT = 65_536


class Location(msgspec.Struct, frozen=True):
    country: str = ""
    region: str = ""
    city: str = ""
    latitude: float | None = None
    longitude: float | None = None


NOWHERE = Location()


class GeoLocator:
    """Looks addresses up; works without a database (then only LAN addresses get a location)."""

    def __init__(self, database_path: str, site: SiteSettings) -> None:
        self._reader = maxminddb.open_database(database_path, maxminddb.MODE_MMAP_EXT) if database_path else None
        self._site = Location(site.country, site.region, site.city, site.latitude, site.longitude)
        self._cache: dict[str, Location] = {}

    def locate(self, ip: str) -> Location:
        """The location of one address (cached)."""
        location = self._cache.get(ip)
        if location is None:
            location = self._lookup(ip)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()  # crude but bounded; a site sees far fewer addresses
            self._cache[ip] = location
        return location

    def _lookup(self, ip: str) -> Location:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return NOWHERE
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_private or address.is_loopback or address.is_link_local:
            return self._site
        if self._reader is None:
            return NOWHERE
        record = self._reader.get(address)
        return _from_record(record) if isinstance(record, dict) else NOWHERE

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


def _from_record(record: dict[str, Any]) -> Location:
    country = record.get("country") or record.get("registered_country") or {}
    subdivisions = record.get("subdivisions") or [{}]
    city = record.get("city") or {}
    position = record.get("location") or {}
    return Location(
        country=country.get("iso_code", ""),
        region=subdivisions[0].get("names", {}).get("en", ""),
        city=city.get("names", {}).get("en", ""),
        latitude=position.get("latitude"),
        longitude=position.get("longitude"),
    )

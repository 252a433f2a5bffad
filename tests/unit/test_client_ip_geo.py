"""Client address (trusted proxies only) and geo from MaxMind's own test database (docs/contract.md §6.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.enrich.client_ip import client_address, normalize_ip, parse_networks
from appliance.enrich.geo import NOWHERE, GeoLocator
from appliance.settings import SiteSettings

GEO_TEST_DB = Path(__file__).resolve().parents[1] / "data" / "geoip" / "GeoIP2-City-Test.mmdb"
SITE = SiteSettings(country="DE", region="Hamburg", city="Hamburg", latitude=53.55, longitude=9.99)
SPOOF = {"x-forwarded-for": "81.2.69.142, 10.0.0.1", "openpanel-client-ip": "216.160.83.56", "x-real-ip": "2001:218::"}


def test_untrusted_peer_headers_are_ignored() -> None:
    assert client_address("192.168.1.20", SPOOF, parse_networks([])) == "192.168.1.20"
    assert client_address("192.168.1.20", SPOOF, parse_networks(["10.0.0.0/8"])) == "192.168.1.20"


def test_trusted_proxy_headers_in_order() -> None:
    trusted = parse_networks(["10.0.0.0/8", "::1"])
    assert client_address("10.1.1.1", SPOOF, trusted) == "216.160.83.56"
    assert client_address("10.1.1.1", {"x-forwarded-for": SPOOF["x-forwarded-for"]}, trusted) == "81.2.69.142"
    assert client_address("::1", {"x-real-ip": "2001:218::"}, trusted) == "2001:218::"
    # A garbage header from the proxy falls through to the next one, then to the peer.
    assert client_address("10.1.1.1", {"openpanel-client-ip": "nope", "x-real-ip": "81.2.69.142"}, trusted) == "81.2.69.142"
    assert client_address("10.1.1.1", {"x-forwarded-for": "unknown"}, trusted) == "10.1.1.1"


def test_ipv4_mapped_addresses_are_ipv4() -> None:
    assert normalize_ip("::ffff:81.2.69.142") == "81.2.69.142"
    assert normalize_ip("not an ip") is None


@pytest.fixture(scope="module")
def locator() -> GeoLocator:
    return GeoLocator(str(GEO_TEST_DB), SITE)


@pytest.mark.parametrize(
    ("ip", "country", "region", "city"),
    [
        ("81.2.69.142", "GB", "England", "London"),
        ("216.160.83.56", "US", "Washington", "Milton"),
        ("2001:218::", "JP", "", ""),
        ("::ffff:81.2.69.142", "GB", "England", "London"),
    ],
)
def test_known_answers_of_the_maxmind_test_database(locator: GeoLocator, ip: str, country: str, region: str,
                                                     city: str) -> None:
    where = locator.locate(ip)
    assert (where.country, where.region, where.city) == (country, region, city)
    assert where.latitude is not None and where.longitude is not None


@pytest.mark.parametrize("ip", ["10.1.2.3", "192.168.0.10", "172.16.5.5", "127.0.0.1", "169.254.1.1", "fe80::1",
                                "fd00::1", "::1"])
def test_lan_addresses_get_the_site_location(locator: GeoLocator, ip: str) -> None:
    where = locator.locate(ip)
    assert (where.country, where.region, where.city, where.latitude, where.longitude) == (
        "DE", "Hamburg", "Hamburg", 53.55, 9.99)


def test_unknown_and_invalid_addresses_have_no_location(locator: GeoLocator) -> None:
    assert locator.locate("8.8.8.8") == NOWHERE
    assert locator.locate("testclient") == NOWHERE


def test_without_a_database_only_lan_addresses_are_located() -> None:
    no_db = GeoLocator("", SITE)
    assert no_db.locate("81.2.69.142") == NOWHERE
    assert no_db.locate("10.0.0.1").country == "DE"

"""Client address and geo over a real socket: LAN peers, spoofed and trusted forwarding headers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from tests.e2e.conftest import GatewayServer
from tests.helpers import AUTH, PHONE_UA, query, track, write_config

GEO_TEST_DB = Path(__file__).resolve().parents[1] / "data" / "geoip" / "GeoIP2-City-Test.mmdb"
SITE = {"country": "DE", "region": "Hamburg", "city": "Hamburg"}


def start(folder: Path, trusted_proxies: list[str]) -> GatewayServer:
    write_config(folder, geo={"database": str(GEO_TEST_DB)}, site=SITE,
                 server={"trusted_proxies": trusted_proxies})
    return GatewayServer(folder).start()


@pytest.fixture
def untrusting(tmp_path: Path) -> Iterator[GatewayServer]:
    server = start(tmp_path, [])
    yield server
    if server.process is not None:
        server.kill()


@pytest.fixture
def behind_proxy(tmp_path: Path) -> Iterator[GatewayServer]:
    server = start(tmp_path, ["127.0.0.1/32"])
    yield server
    if server.process is not None:
        server.kill()


def send(server: GatewayServer, name: str, **headers: str) -> None:
    body = msgspec.json.encode({"events": [track(name)]})
    response = httpx.post(f"{server.url}/track/batch", content=body,
                          headers={**AUTH, "user-agent": PHONE_UA, **headers})
    assert response.json()["accepted"] == 1


def geo_by_name(server: GatewayServer) -> dict[str, tuple[str, str, str]]:
    assert server.stop() == 0
    return {r[0]: (r[1], r[2], r[3]) for r in query(server.database, "SELECT name, country, city, device_id FROM events")}


def test_lan_client_gets_the_site_location_and_spoofed_headers_are_ignored(untrusting: GatewayServer) -> None:
    send(untrusting, "lan")
    send(untrusting, "spoofed", **{"x-forwarded-for": "81.2.69.142", "openpanel-client-ip": "216.160.83.56"})
    stored = geo_by_name(untrusting)
    assert stored["lan"][:2] == ("DE", "Hamburg")
    assert stored["spoofed"][:2] == ("DE", "Hamburg")
    assert stored["lan"][2] == stored["spoofed"][2]  # same address, so the same device


def test_trusted_proxy_forwarding_headers_are_believed(behind_proxy: GatewayServer) -> None:
    send(behind_proxy, "forwarded", **{"x-forwarded-for": "81.2.69.142, 127.0.0.1"})
    send(behind_proxy, "direct")
    stored = geo_by_name(behind_proxy)
    assert stored["forwarded"][:2] == ("GB", "London")
    assert stored["direct"][:2] == ("DE", "Hamburg")

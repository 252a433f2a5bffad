"""The client address of a request (docs/contract.md §6.2).

Input: the TCP peer, the request headers, the trusted proxy networks. Output: the address used
for geo and device ids. Forwarding headers are believed only from a trusted peer, so a device on
the LAN cannot claim to be somewhere else by sending `x-forwarded-for`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Checked in this order; the first one holding a valid address wins.
FORWARDING_HEADERS = ("openpanel-client-ip", "x-forwarded-for", "x-real-ip")


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """`server.trusted_proxies` entries (addresses or CIDR networks) as networks."""
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


def normalize_ip(value: str) -> str | None:
    """Canonical text of an address (IPv4-mapped IPv6 as IPv4), or None when it is not one."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def client_address(peer: str, headers: Mapping[str, str], trusted: tuple[IPNetwork, ...]) -> str:
    """The request's client address: the peer, or what a trusted proxy says it forwarded."""
    peer_ip = normalize_ip(peer)
    if peer_ip is None:
        return peer
    if trusted and any(ipaddress.ip_address(peer_ip) in network for network in trusted):
        for header in FORWARDING_HEADERS:
            value = headers.get(header)
            if value:
                forwarded = normalize_ip(value.split(",")[0])
                if forwarded is not None:
                    return forwarded
    return peer_ip

"""Is a request's peer inside a list of networks? (admin pages, /schema, /metrics)

Input: the request and parsed networks. Output: a bool. The TCP peer is judged, never a
forwarding header: these endpoints are for the box itself and the operator's LAN.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from litestar import Request

from appliance.enrich.client_ip import IPNetwork


def peer_in(request: Request[Any, Any, Any], networks: tuple[IPNetwork, ...]) -> bool:
    """True when the request's peer address is inside one of `networks`."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack listener's IPv4 client
    return any(address in network for network in networks)

"""The OpenAPI description at `/schema` (JSON, nothing else to load), to admin networks only.

Input: the app's routes. Output: `OpenAPIConfig` serving the document as JSON at `/schema` and
`/schema/openapi.json`; no HTML viewer, since Litestar's viewers load scripts from public CDNs
and an offline site would show a blank page.
"""

from __future__ import annotations

from typing import Any

from litestar import Router
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from appliance import __version__
from appliance.errors import GatewayError
from appliance.networks import peer_in


class SchemaForbidden(GatewayError):
    status_code = 403


def _admin_networks_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    gateway = connection.app.state.gateway
    if not peer_in(connection, gateway.admin_networks):  # type: ignore[arg-type]
        raise SchemaForbidden("/schema answers only clients in server.admin_networks (loopback by default)")


def openapi_config() -> OpenAPIConfig:
    """The OpenAPI document as JSON, guarded by `server.admin_networks`."""
    return OpenAPIConfig(
        title="Edge analytics gateway", version=__version__, path="/schema",
        description="OpenPanel-compatible ingestion. A 2xx answer means every accepted event is committed "
                    "to the gateway's disk; see docs/contract.md in the repository.",
        render_plugins=[JsonRenderPlugin(path=["/", "/openapi.json"])],
        openapi_router=Router(path="/schema", route_handlers=[], guards=[_admin_networks_only]),
    )

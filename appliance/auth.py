"""Project authentication (docs/contract.md §3.1): secret clients and origin-checked (browser) clients.

Input: a request's `Credentials` — the client id and secret (from the `openpanel-client-id` /
`openpanel-client-secret` headers, or `clientId` / `clientSecret` in the body as older SDKs send
them) and its `Origin` header. Output: the `Client` (the project, and whether it proved the
secret), or `Unauthorized` naming what is missing or wrong.

As OpenPanel (apps/api/src/utils/auth.ts, `validateSdkRequest`): a request with a secret must
carry the project's secret (compared in constant time); one without is a browser page and is
accepted only when its `Origin` is in the project's `allowed_origins`. Unlike OpenPanel, a wrong
secret is refused even from an allowed origin, so a misconfigured device is told at once. The
answer for an unknown id does not depend on the secret or origin sent.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from appliance.errors import Unauthorized
from appliance.origins import OriginPolicy
from appliance.settings import ProjectSettings


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request offers to prove where it comes from."""

    client_id: str | None
    client_secret: str | None
    origin: str | None

    def completed_by(self, client_id: Any, client_secret: Any) -> Credentials:
        """These credentials with the body's `clientId` / `clientSecret` where a header is missing."""
        return Credentials(
            client_id=self.client_id or (client_id if isinstance(client_id, str) else None),
            client_secret=self.client_secret or (client_secret if isinstance(client_secret, str) else None),
            origin=self.origin,
        )


@dataclass(frozen=True, slots=True)
class Client:
    """An authenticated sender: its project and whether it proved the secret."""

    project: ProjectSettings
    has_secret: bool  # False: an origin-checked browser page (bot check applies, no revenue)


class Authenticator:
    """The configured projects by client id, with their `allowed_origins` parsed once."""

    def __init__(self, projects: list[ProjectSettings]) -> None:
        self._projects = {project.client_id: project for project in projects}
        self._origins = {project.client_id: OriginPolicy.parse(project.allowed_origins) for project in projects}

    def authenticate(self, credentials: Credentials) -> Client:
        """The client a request comes from; raises Unauthorized saying why not."""
        client_id, secret, origin = credentials.client_id, credentials.client_secret, credentials.origin
        if not client_id:
            raise Unauthorized("missing openpanel-client-id header")
        project = self._projects.get(client_id)
        if project is None:
            raise Unauthorized("unknown openpanel-client-id")
        if secret:
            if not hmac.compare_digest(secret.encode(), project.client_secret.encode()):
                raise Unauthorized("wrong openpanel-client-secret for this client id")
            return Client(project, has_secret=True)
        if not origin:
            raise Unauthorized("missing openpanel-client-secret header (and no Origin header to check instead)")
        if not self._origins[client_id].allows(origin):
            raise Unauthorized(
                f"missing openpanel-client-secret header, and origin {origin[:200]} is not in this project's "
                "allowed_origins"
            )
        return Client(project, has_secret=False)

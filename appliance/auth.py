"""Project authentication (docs/contract.md §3.1).

Input: the request's `openpanel-client-id` and `openpanel-client-secret` headers. Output: the
configured project, or `Unauthorized` naming what is missing or wrong. Secrets are compared in
constant time; the answer for an unknown id does not depend on the secret sent.
"""

from __future__ import annotations

import hmac

from appliance.errors import Unauthorized
from appliance.settings import ProjectSettings


def authenticate(
    projects: dict[str, ProjectSettings], client_id: str | None, client_secret: str | None
) -> ProjectSettings:
    """The project a request belongs to; raises Unauthorized otherwise."""
    if not client_id:
        raise Unauthorized("missing openpanel-client-id header")
    project = projects.get(client_id)
    if project is None:
        raise Unauthorized("unknown openpanel-client-id")
    if not client_secret:
        raise Unauthorized("missing openpanel-client-secret header")
    if not hmac.compare_digest(client_secret.encode(), project.client_secret.encode()):
        raise Unauthorized("wrong openpanel-client-secret for this client id")
    return project

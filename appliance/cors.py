"""CORS for the ingest routes only (docs/contract.md §3.1): browser pages on the site's web apps send here.

Input: every request to `/track`, `/track/batch`, `/track/device-id` (this middleware sits on
their router, so `/admin*`, `/schema`, `/healthz`, `/readyz` never get CORS headers). Output: a
preflight (`OPTIONS` with `Origin`) is answered here with `204` and the allowed methods, headers
and a long max-age; every other answer, errors included (the app's exception handlers run inside
this middleware), gets `Access-Control-Allow-Origin: <the request's Origin>` and `Vary: Origin`.

The policy is Litestar's `CORSConfig` (header lists, max-age, `preflight_headers`), but Litestar
applies it app-wide, admin routes included, and answers `*` rather than the origin; hence this
route-level middleware. Every origin is reflected, as OpenPanel serves its track routes with
`origin: '*'` (apps/api/src/app.ts): CORS is not what guards ingestion — authentication is,
by secret or by the project's `allowed_origins` — and a page on an origin that is not allowed
must be able to read its `401`, which tells the SDK to stop instead of retrying. No credentials
(cookies) are ever allowed.
"""

from __future__ import annotations

from litestar.config.cors import CORSConfig
from litestar.datastructures import Headers, MutableScopeHeaders
from litestar.enums import HttpMethod, ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from appliance import wire

INGEST_CORS = CORSConfig(
    allow_origins=["*"],
    allow_methods=["GET", "POST", "OPTIONS"],
    # What OpenPanel's SDKs send; Litestar adds Accept, Accept-Language, Content-Language, Content-Type.
    allow_headers=[
        "content-encoding",
        "openpanel-client-id",
        "openpanel-client-secret",
        "openpanel-sdk-name",
        "openpanel-sdk-version",
    ],
    expose_headers=["Retry-After"],  # a full disk's 503 says when to come back
    max_age=7 * 24 * 3600,  # as OpenPanel; browsers cap it lower (Chromium: 2 h)
)


class IngestCORSMiddleware:
    """Answers preflights and adds the allow-origin headers to the ingest routes' answers."""

    def __init__(self, app: ASGIApp, config: CORSConfig = INGEST_CORS) -> None:
        self.app = app
        self.config = config
        preflight = dict(config.preflight_headers)
        preflight.pop("Access-Control-Allow-Origin", None)  # reflected per request instead of "*"
        self._preflight_headers = preflight
        self._simple_headers = {k: v for k, v in config.simple_headers.items() if k != "Access-Control-Allow-Origin"}
        self._allowed_headers = {header.lower() for header in preflight["Access-Control-Allow-Headers"].split(", ")}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        headers = Headers.from_scope(scope)
        origin = headers.get("origin")
        if origin and scope["method"] == HttpMethod.OPTIONS:
            await self._preflight(origin, headers, send)
            return
        await self.app(scope, receive, self._with_cors_headers(send, origin))

    async def _preflight(self, origin: str, headers: Headers, send: Send) -> None:
        method = headers.get("access-control-request-method", "")
        requested = headers.get("access-control-request-headers", "").lower().split(",")
        refused = [h.strip() for h in requested if h.strip() and h.strip() not in self._allowed_headers]
        problem = ""
        if method and method.upper() not in self.config.allow_methods:
            problem = f"method {method} is not allowed here"
        elif refused:
            problem = f"header(s) {', '.join(refused)} not allowed here"
        if problem:  # the browser blocks the request; the message helps whoever reads the network log
            error = wire.ErrorBody(status=400, error="Bad Request", message=f"CORS preflight: {problem}")
            await _send(send, 400, {"Vary": "Origin", "Content-Type": "application/json"}, wire.encoder.encode(error))
            return
        allowed = {**self._preflight_headers, "Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        await _send(send, 204, allowed, b"")

    def _with_cors_headers(self, send: Send, origin: str | None) -> Send:
        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                # Always: the answer to a page differs from the answer to a device by its Origin.
                headers.extend_header_value("Vary", "Origin")
                if origin:
                    headers["Access-Control-Allow-Origin"] = origin
                    headers.update(self._simple_headers)
            await send(message)

        return send_with_cors


async def _send(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    raw_headers = [(name.lower().encode(), value.encode("latin-1")) for name, value in headers.items()]
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})

"""The gateway's error hierarchy: each error carries the HTTP answer it becomes.

One base class, one place (`app.py`'s exception handler) that turns errors into the JSON body
`{"status", "error", "message"}` of docs/contract.md §3. Per-row problems inside a batch are not exceptions
but `outcomes.Rejection`s; these classes are for whole-request answers.
"""

from __future__ import annotations

from http import HTTPStatus


class GatewayError(Exception):
    """A whole-request failure with its HTTP status and a message naming the problem."""

    status_code: int = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    @property
    def error(self) -> str:
        """The status phrase, e.g. "Bad Request"."""
        return HTTPStatus(self.status_code).phrase


class BadRequest(GatewayError):
    status_code = HTTPStatus.BAD_REQUEST


class Unauthorized(GatewayError):
    status_code = HTTPStatus.UNAUTHORIZED


class PayloadTooLarge(GatewayError):
    status_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class UnsupportedMediaType(GatewayError):
    status_code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class Conflict(GatewayError):
    """The request cannot be done in this gateway's configuration (e.g. a sync without upstream)."""

    status_code = HTTPStatus.CONFLICT


class ServiceUnavailable(GatewayError):
    """The gateway cannot store events right now (disk cap, writer down); retry later."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE

    def __init__(self, message: str, retry_after_seconds: int = 30) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_seconds)})


class StorageFailed(GatewayError):
    """The writer could not commit; nothing of the request is stored, resending is safe."""

    status_code = HTTPStatus.INTERNAL_SERVER_ERROR

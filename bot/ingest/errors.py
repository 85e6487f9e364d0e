"""Why a webhook request is refused, and with which HTTP status.

Senders retry only 5xx, so a 4xx here means "this request can never succeed as sent", and
:class:`Unavailable` (503) means "nothing was stored, send it again later".
"""

from __future__ import annotations


class IngestError(Exception):
    status: int = 400
    reason: str = "invalid"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Unauthorized(IngestError):
    status = 401
    reason = "unauthorized"


class PayloadTooLarge(IngestError):
    status = 413
    reason = "too_large"


class UnsupportedMediaType(IngestError):
    status = 415
    reason = "unsupported_media_type"


class InvalidPayload(IngestError):
    status = 400
    reason = "invalid"


class Unavailable(IngestError):
    status = 503
    reason = "unavailable"

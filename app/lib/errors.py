"""The one domain error type, mapped to HTTP and Socket.IO error replies."""
from __future__ import annotations

# Codes clients can branch on, with the HTTP status each maps to.
STATUS_BY_CODE = {
    "invalid": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "not_member": 403,
    "conflict": 409,
    "too_many": 409,
    "gone": 410,
    "too_large": 413,
    "unprocessable": 422,
    "rate_limited": 429,
    "registration_closed": 403,
}


class ChatError(Exception):
    """A refusal the client should see: a stable code and a human message."""

    def __init__(
        self, code: str, message: str, *, status: int | None = None, field: str | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_BY_CODE.get(code, 400)
        self.field = field
        self.retry_after = retry_after

    def to_dict(self) -> dict:
        """The error as the JSON body both HTTP and Socket.IO replies carry."""
        error = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
        return {"error": error}

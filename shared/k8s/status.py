"""metav1.Status objects for what the gateway answers itself, so kubectl prints them as it prints the API
server's own (``Error from server (Forbidden): ...``)."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 406: "NotAcceptable",
            413: "RequestEntityTooLarge", 415: "UnsupportedMediaType", 429: "TooManyRequests",
            500: "InternalError", 502: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}  # fmt: skip


def failure(code: int, message: str, *, reason: str | None = None, details: Obj | None = None) -> Obj:
    """A Failure Status; ``reason`` defaults to the API server's for ``code``."""
    body: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or _REASONS.get(code, "Unknown"),
    }
    if details:
        body["details"] = details
    body["code"] = code
    return body


def refused(message: str, *, rule: str, name: str = "", group: str = "", kind: str = "", code: int = 403) -> Obj:
    """A request refused by policy: 403 Forbidden, the rule as the Status cause (``AirlockPolicy``)."""
    details: Obj = {k: v for k, v in (("name", name), ("group", group), ("kind", kind)) if v}
    details["causes"] = [{"reason": "AirlockPolicy", "message": f"rule {rule}"}]
    return failure(code, message, details=details)


def watch_error(status: Obj) -> Obj:
    """A watch stream's last event when the gateway ends it (the API server ends watches with ERROR too)."""
    return {"type": "ERROR", "object": status}

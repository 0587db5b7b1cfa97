"""metav1.Status failures, shaped and worded as the API server's apimachinery errors package shapes them.

Every refusal the stand-in makes is an :class:`ApiError` carrying the Status body; one place (the server's
error middleware) turns it into the HTTP response, so kubectl prints ``Error from server (NotFound): ...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .kinds import ResourceType

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Cause:
    """One metav1.StatusCause: ``reason`` is its type (FieldValueInvalid, ...)."""

    reason: str
    message: str
    field: str = ""

    def to_json(self) -> Obj:
        body: Obj = {"reason": self.reason, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body


class ApiError(Exception):
    """A request the API refuses; ``status`` is the metav1.Status body sent to the client."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    @property
    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def success_status(details: Obj | None = None) -> Obj:
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details is not None:
        body["details"] = details
    return body


def _details(rt: ResourceType | None, name: str = "", **extra: Any) -> Obj:
    details: Obj = {}
    if name:
        details["name"] = name
    if rt is not None and rt.group:
        details["group"] = rt.group
    if rt is not None:
        details["kind"] = rt.plural
    details.update(extra)
    return details


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.qualified} "{name}" not found', _details(rt, name))


def resource_not_found() -> ApiError:
    """A path naming no resource the server serves."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists', _details(rt, name))


def conflict(rt: ResourceType, name: str, why: str, causes: list[Cause] | None = None) -> ApiError:
    details = _details(rt, name)
    if causes:
        details["causes"] = [c.to_json() for c in causes]
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rt.qualified} "{name}": {why}', details)


def modified_conflict(rt: ResourceType, name: str) -> ApiError:
    return conflict(
        rt, name, "the object has been modified; please apply your changes to the latest version and try again"
    )


def invalid(rt: ResourceType, name: str, causes: list[Cause]) -> ApiError:
    """422 Invalid, one cause per field error, as field.ErrorList aggregates them."""
    texts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details: Obj = {"name": name} if name else {}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.kind
    details["causes"] = [c.to_json() for c in causes]
    return ApiError(422, "Invalid", f'{rt.qualified_kind} "{name}" is invalid: {summary}', details)


def forbidden(rt_name: str, name: str, why: str, group: str = "") -> ApiError:
    """403 Forbidden; ``rt_name`` is the qualified resource (``pods``, ``deployments.apps``, ``users``)."""
    subject = f'{rt_name} "{name}"' if name else rt_name
    details: Obj = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = rt_name.split(".", 1)[0]
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {why}", details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def not_acceptable(accepted: list[str]) -> ApiError:
    return ApiError(406, "NotAcceptable", "only the following media types are accepted: " + ", ".join(accepted))


def unsupported_media_type(accepted: list[str]) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: {', '.join(accepted)}",
    )


def too_large() -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")


def internal(message: str) -> ApiError:
    return ApiError(
        500,
        "InternalError",
        f"Internal error occurred: {message}",
        {"causes": [{"message": message}]},
    )

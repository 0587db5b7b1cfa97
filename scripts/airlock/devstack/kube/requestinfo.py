"""The API server's request-info: (verb, group, version, resource, subresource, namespace, name) of a request.

Follows apiserver's RequestInfoFactory: ``/api/v1/...`` and ``/apis/<group>/<version>/...`` are resource
requests; the HTTP method gives the verb (GET get, POST create, PUT update, PATCH patch, DELETE delete), a GET
without a name is ``list`` (``watch`` with ``?watch=true`` or under the deprecated ``/watch/`` prefix), a
DELETE without a name is ``deletecollection``; ``namespaces/<ns>/<rest>`` scopes ``<rest>`` to ``<ns>``
unless ``<rest>`` is a namespace subresource (status, finalize). Everything else is a non-resource request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

_METHOD_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}


@dataclass(frozen=True, slots=True)
class RequestInfo:
    path: str
    verb: str
    is_resource: bool
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    # True when ``name`` came from ``fieldSelector=metadata.name=...`` on a list or watch.
    name_from_selector: bool = False
    # Path segments after the subresource (``pods/x/proxy/a/b``): not interpreted.
    rest: tuple[str, ...] = ()


def request_info(method: str, path: str, query: Mapping[str, str]) -> RequestInfo:
    """Parse one request exactly as the API server's request-info filter does."""
    verb = _METHOD_VERBS.get(method.upper(), method.lower())
    parts = [p for p in path.strip("/").split("/")] if path.strip("/") else []
    if not parts or parts[0] not in ("api", "apis"):
        return RequestInfo(path, verb, False)
    prefix, parts = parts[0], parts[1:]
    if prefix == "api":
        if not parts:
            return RequestInfo(path, verb, False)
        group, version, parts = "", parts[0], parts[1:]
    else:
        if len(parts) < 2:
            return RequestInfo(path, verb, False)
        group, version, parts = parts[0], parts[1], parts[2:]
    if not parts:
        return RequestInfo(path, verb, False)

    if parts[0] == "watch":
        verb = "watch"
        parts = parts[1:]
        if not parts:
            return RequestInfo(path, verb, False)

    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]

    resource = parts[0]
    name = parts[1] if len(parts) >= 2 else ""
    subresource = parts[2] if len(parts) >= 3 else ""
    rest = tuple(parts[3:])

    name_from_selector = False
    if not name and verb == "get":
        verb = "watch" if query.get("watch", "") in _TRUE else "list"
    if not name and verb in ("list", "watch"):
        selected = _exact_name(query.get("fieldSelector", ""))
        if selected:
            name, name_from_selector = selected, True
    if not name and verb == "delete":
        verb = "deletecollection"
    return RequestInfo(
        path=path,
        verb=verb,
        is_resource=True,
        group=group,
        version=version,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
        name_from_selector=name_from_selector,
        rest=rest,
    )


def _exact_name(selector: str) -> str:
    """The name a field selector requires by equality on metadata.name, if it is a valid path segment."""
    for part in selector.split(","):
        field, sep, value = part.partition("=")
        field = field.strip().rstrip("=")
        value = value.lstrip("=").strip()
        if sep and field == "metadata.name" and value and value not in (".", "..") and not set(value) & {"/", "%"}:
            return value
    return ""

"""The stand-in's HTTP(S) server: one aiohttp application, one chokepoint per request.

Every request passes the same middleware, in the API server's filter order: request-info, authentication
(401), impersonation (403 when not allowed), authorization (403), then the handler; an :class:`ApiError`
anywhere becomes its Status response, anything unexpected a 500 InternalError Status. Each request then
leaves one audit event (audit.k8s.io/v1, level Metadata) in ``<state>/audit.log`` and in memory, readable
by a ``system:masters`` user at ``/airlock-standin/audit`` (a stand-in-only path, as its name says).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from . import discovery, openapi, openapi_proto
from .auth import Authenticator, Identity, audit_event
from .cluster import Cluster
from .kinds import GROUP_VERSIONS
from .negotiation import JSON, Representation
from .requestinfo import RequestInfo, request_info
from .rest import ResourceHandler, encode, status_response
from .status import ApiError, forbidden, internal

Obj = dict[str, Any]
log = logging.getLogger("airlock.kube-standin")
HEALTH_PATHS = ("/healthz", "/livez", "/readyz")
AUDIT_PATH = "/airlock-standin/audit"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class AuditLog:
    path: Path
    recent: deque[Obj]

    def write(self, event: Obj) -> None:
        self.recent.append(event)
        with self.path.open("a") as out:
            out.write(json.dumps(event, separators=(",", ":")) + "\n")


class KubeApiServer:
    def __init__(self, cluster: Cluster, authenticator: Authenticator, audit: AuditLog,
                 bookmark_interval: float = 60.0) -> None:
        self.cluster = cluster
        self.authenticator = authenticator
        self.audit = audit
        self.resources = ResourceHandler(cluster, authenticator, bookmark_interval)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._chokepoint], client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    @web.middleware
    async def _chokepoint(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        received = dt.datetime.now(dt.UTC)
        if request.path in HEALTH_PATHS:
            return web.Response(text="ok")
        info = request_info(request.method, request.path, request.query)
        identity: Identity | None = None
        decision = reason = ""
        code = 500
        try:
            user, may_impersonate = self.authenticator.authenticate(request.headers.get("Authorization"))
            identity = self.authenticator.impersonate(user, may_impersonate, request.headers,
                                                      request.headers.getall("Impersonate-Group", []))
            try:
                self.authenticator.authorize(identity.effective, info)
            except ApiError:
                decision, reason = "forbid", ""
                raise
            decision, reason = "allow", "stand-in rule"
            request["airlock_info"] = info
            request["airlock_identity"] = identity
            response = await handler(request)
            code = response.status
            return response
        except ApiError as e:
            code = e.code
            return status_response(e)
        except ConnectionError:
            code = 499  # the client went away mid-response
            raise
        except Exception as e:  # a bug in the stand-in: answer as the API server does, keep serving
            log.exception("request %s %s failed", request.method, request.path)
            error = internal(f"{type(e).__name__}: {e}")
            code = error.code
            return status_response(error)
        finally:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            self.audit.write(audit_event(identity, info, request.method, request.path_qs, code,
                                         str(peer[0]) if peer else "", request.headers.get("User-Agent", ""),
                                         decision, reason, received))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        info: RequestInfo = request["airlock_info"]
        if info.is_resource:
            return await self.resources.handle(request, info)
        return self._non_resource(request)

    def _non_resource(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        accept = request.headers.get("Accept")
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="405: Method Not Allowed")
        if path == "/version":
            return _json(discovery.SERVER_VERSION)
        if path in ("/api", "/apis"):
            version = discovery.aggregated_version(accept)
            if version:
                body = discovery.aggregated(path == "/api", version)
                tag = discovery.etag(body)
                if request.headers.get("If-None-Match") == tag:
                    return web.Response(status=304, headers={"ETag": tag})
                return web.Response(body=json.dumps(body).encode(), headers={
                    "Content-Type": discovery.aggregated_content_type(version), "ETag": tag, "Vary": "Accept"})
            if path == "/api":
                host = request.host or "127.0.0.1"
                return _json(discovery.api_versions(host))
            return _json(discovery.api_group_list())
        parts = path.strip("/").split("/")
        document: Obj | None = None
        if parts[0] == "api" and len(parts) == 2:
            document = discovery.api_resource_list("", parts[1])
        elif parts[0] == "apis" and len(parts) == 2:
            document = discovery.api_group(parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            document = discovery.api_resource_list(parts[1], parts[2])
        if document is not None:
            return _json(document)
        if path == "/openapi/v2":
            swagger = openapi.v2_document()
            if any(t in (accept or "") for t in openapi_proto.MEDIA_TYPES):
                return web.Response(body=openapi_proto.document(swagger),
                                    headers={"Content-Type": openapi_proto.CONTENT_TYPE})
            return _json(swagger)
        if path == "/openapi/v3":
            return _json(openapi.v3_index())
        if path.startswith("/openapi/v3/"):
            wanted = path[len("/openapi/v3/"):]
            for group, version in GROUP_VERSIONS:
                if openapi.group_version_path(group, version) == wanted:
                    headers = {"Cache-Control": "public, immutable"} if request.query.get("hash") else {}
                    return _json(openapi.v3_document(group, version) or {}, headers)
        if path == AUDIT_PATH:
            identity: Identity = request["airlock_identity"]
            if "system:masters" not in identity.effective.groups:
                raise forbidden("audit", "", f'User "{identity.effective.name}" cannot get path "{AUDIT_PATH}"')
            return _json({"items": list(self.audit.recent)})
        return web.Response(status=404, text="404 page not found\n")


def _json(body: Obj, headers: dict[str, str] | None = None) -> web.Response:
    response = encode(body, Representation(JSON))
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    context.set_alpn_protocols(["http/1.1"])
    return context

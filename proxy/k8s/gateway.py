"""The Kubernetes API listener: TLS, the agent's token, its session, then the exchange.

An agent's kubeconfig names the gateway as its cluster's server, with the cluster and identity in the
path: ``https://airlock.internal:6443/targets/<cluster>/identities/<identity>`` (``airlock kubeconfig``
writes it). kubectl, client-go, the Python client and Helm put a server URL's path in front of every API
path, so the gateway reads the target and identity from there and passes the rest on, byte for byte. The
identity is what the agent claims, as a PostgreSQL user name is; the bearer token (an OIDC JWT or an
Airlock key) must prove it, exactly as a PostgreSQL password must. A request without the prefix or without
a bearer token is answered at once (404, 401), before anything is asked of the control plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time

from aiohttp import web

from shared.k8s import status as k8s_status

from ..approvals import ApprovalsClient
from ..services import Services
from .context import K8sContext
from .exchange import Exchange, status_response
from .sessions import GatewayRefusal, SessionRegistry
from .upstream import Upstreams

log = logging.getLogger(__name__)

PREFIX = "/targets/"
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@-")


def split_route(raw_path: str) -> tuple[str, str, str] | None:
    """(target, identity, API request target) of ``/targets/<t>/identities/<i>/<api path>[?query]``."""
    if not raw_path.startswith(PREFIX):
        return None
    path, question, query = raw_path.partition("?")
    parts = path[len(PREFIX) :].split("/", 3)
    if len(parts) < 3 or parts[1] != "identities":
        return None
    target, identity = parts[0], parts[2]
    if not target or not identity or not set(target) <= _NAME_CHARS or not set(identity) <= _NAME_CHARS:
        return None
    rest = "/" + (parts[3] if len(parts) > 3 else "")
    return target, identity, rest + question + query


def bearer_token(header: str | None) -> str | None:
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class K8sGateway:
    """The listener and its sessions; one per proxy process (``proxy/server.py`` starts and drains it)."""

    def __init__(self, services: Services, tls_context: ssl.SSLContext | None,
                 approvals: ApprovalsClient | None) -> None:  # fmt: skip
        self.services = services
        self.settings = services.settings
        self.tls_context = tls_context
        self.ctx = K8sContext(services, Upstreams(services.credentials, connect_timeout=self.settings.connect_timeout),
                              approvals)  # fmt: skip
        self.ctx.registry = SessionRegistry(self.ctx)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._in_flight: set[asyncio.Task[object]] = set()

    @property
    def sessions(self) -> int:
        return len(self.ctx.registry.sessions)

    @property
    def port(self) -> int | None:
        server = self._site._server if self._site is not None else None
        sockets = getattr(server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else None

    @property
    def serving(self) -> bool:
        return self._site is not None and not self.ctx.registry.closing

    async def start(self) -> None:
        if self.tls_context is None:
            # Bearer tokens in plain text: never. (PostgreSQL refuses passwords without TLS the same way.)
            log.error("kubernetes gateway not started: no TLS certificate is configured (AIRLOCK_PROXY_TLS_*)")
            return
        self.tls_context.set_alpn_protocols(["http/1.1"])
        app = web.Application(client_max_size=self.settings.k8s_max_request_body)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=2.0)
        await self._runner.setup()
        assert self.settings.k8s_port is not None
        self._site = web.TCPSite(self._runner, self.settings.listen_host, self.settings.k8s_port,
                                 ssl_context=self.tls_context)  # fmt: skip
        await self._site.start()
        log.info("airlock kubernetes gateway listening on %s:%d", self.settings.listen_host, self.port)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            return await self._serve(request)
        finally:
            self._in_flight.discard(task)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        route = split_route(request.raw_path)
        if route is None:
            return status_response(k8s_status.failure(404, (
                "this is Airlock's Kubernetes gateway: use a kubeconfig from `airlock kubeconfig IDENTITY`, whose "
                "server is https://<gateway>/targets/<cluster>/identities/<identity>")))  # fmt: skip
        target, identity, api_target = route
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            return status_response(k8s_status.failure(401, "Airlock: present a bearer token (an OIDC token or an "
                                                           "Airlock key)"))  # fmt: skip
        peer = request.transport.get_extra_info("peername") if request.transport else None
        client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or "")
        try:
            session = await self.ctx.registry.session_for(identity, target, token, client)
        except GatewayRefusal as e:
            return status_response(e.status)
        return await Exchange(session, request, api_target).run()

    async def shutdown(self, drain: float) -> None:
        """Stop accepting; let requests in flight finish (bounded); end live streams and every session."""
        registry = self.ctx.registry
        registry.closing = True
        if self._site is not None:
            await self._site.stop()
        streams = {e for s in registry.sessions.values() for e in s.live}
        ending = k8s_status.failure(503, "Airlock proxy is shutting down; reconnect to continue")
        for stream in streams:
            stream.abort(ending)
        deadline = time.monotonic() + drain
        while self._in_flight and time.monotonic() < deadline:  # noqa: ASYNC110 - handlers remove themselves
            await asyncio.sleep(0.05)
        await registry.close_all("proxy shutdown", ending)
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()
        await self.ctx.upstreams.close()

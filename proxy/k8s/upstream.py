"""The cluster side: one aiohttp client per cluster, the gateway's own credential, and the headers a request
goes on with.

A request reaches the cluster with the gateway's credential (a service-account token from the target's
Secrets Manager secret, ``{"token": ...}``) and ``Impersonate-User`` / ``Impersonate-Group`` naming the
agent as the binding maps it, so the cluster's RBAC decides what that identity may do and its audit log
names it. Whatever the agent sent to authenticate or impersonate is dropped (``Authorization``,
``Impersonate-*``, front-proxy ``X-Remote-*``), as are hop-by-hop headers; ``Accept-Encoding`` becomes
``identity`` (the gateway reads what it masks), and ``Accept`` is rewritten where the gateway masks
(``shared.k8s.negotiation``).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterable

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from shared.controlplane import Grant, KubernetesBackendRef

from ..credentials import CredentialCache, CredentialError

# Not forwarded (RFC 9110 hop-by-hop, and what only the gateway may say to the cluster).
_DROPPED = frozenset({
    "authorization", "proxy-authorization", "connection", "keep-alive", "proxy-connection", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length", "accept-encoding", "accept", "cookie",
})  # fmt: skip
_DROPPED_PREFIXES = ("impersonate-", "x-remote-", "sec-websocket-")
# Response headers not passed back (hop-by-hop, or the gateway's own to set).
RESPONSE_DROPPED = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding",
                              "server", "date", "upgrade", "proxy-connection", "trailer"})  # fmt: skip


class UpstreamError(Exception):
    """The cluster could not be reached, or the gateway's credential for it is unusable."""


class Upstreams:
    """aiohttp clients per cluster (server URL and CA), shared by every session of the process."""

    def __init__(self, credentials: CredentialCache, *, connect_timeout: float = 10.0, limit: int = 256) -> None:
        self.credentials = credentials
        self.connect_timeout = connect_timeout
        self.limit = limit
        self._clients: dict[tuple[str, str | None], aiohttp.ClientSession] = {}
        self._parsed: dict[str, tuple[str, str]] = {}  # secret id -> (its text, the token in it)

    def client(self, backend: KubernetesBackendRef) -> aiohttp.ClientSession:
        key = (backend.server, backend.ca_pem)
        client = self._clients.get(key)
        if client is None or client.closed:
            context = ssl.create_default_context(cadata=backend.ca_pem) if backend.ca_pem else \
                ssl.create_default_context()  # fmt: skip
            context.set_alpn_protocols(["http/1.1"])
            connector = aiohttp.TCPConnector(ssl=context, limit=self.limit, limit_per_host=self.limit,
                                             enable_cleanup_closed=True)  # fmt: skip
            timeout = aiohttp.ClientTimeout(total=None, connect=self.connect_timeout, sock_connect=self.connect_timeout)
            client = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                           skip_auto_headers=("User-Agent",))  # fmt: skip
            self._clients[key] = client
        return client

    @staticmethod
    def url(backend: KubernetesBackendRef, target: str) -> URL:
        """The cluster's URL for an origin-form request target, byte for byte (no normalisation)."""
        return URL(backend.server.rstrip("/") + target, encoded=True)

    async def token(self, backend: KubernetesBackendRef) -> str:
        """The gateway's bearer token for this cluster (Secrets Manager, cached briefly)."""
        try:
            text = await self.credentials.get_text(backend.credential_secret)
        except CredentialError as e:
            raise UpstreamError(str(e)) from e
        parsed = self._parsed.get(backend.credential_secret)
        if parsed is not None and parsed[0] == text:
            return parsed[1]
        try:
            token = json.loads(text)["token"]
        except (ValueError, KeyError, TypeError) as e:
            raise UpstreamError(f"the cluster credential {backend.credential_secret!r} is not JSON with a token") from e
        if not isinstance(token, str) or not token:
            raise UpstreamError(f"the cluster credential {backend.credential_secret!r} has an empty token")
        self._parsed[backend.credential_secret] = (text, token)
        return token

    def rejected(self, backend: KubernetesBackendRef) -> None:
        """The cluster refused the gateway's credential (401): read it afresh next time (rotation)."""
        self.credentials.invalidate(backend.credential_secret)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


def impersonation(grant: Grant) -> tuple[str, list[str]]:
    """(user, groups) the cluster sees for this grant's identity."""
    access = grant.kubernetes_access
    user = access.user if access is not None and access.user else f"airlock:{grant.identity}"
    return user, list(access.groups) if access is not None else []


def upstream_headers(agent: CIMultiDictProxy[str], token: str, grant: Grant, *, accept: str | None,
                     extra: Iterable[tuple[str, str]] = ()) -> CIMultiDict[str]:  # fmt: skip
    """The headers a request goes upstream with (see the module docstring); ``accept`` None keeps the agent's."""
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in agent.items():
        lower = name.lower()
        if lower in _DROPPED or lower.startswith(_DROPPED_PREFIXES):
            continue
        out.add(name, value)
    user, groups = impersonation(grant)
    out["Authorization"] = f"Bearer {token}"
    out["Impersonate-User"] = user
    for group in groups:
        out.add("Impersonate-Group", group)
    out["Accept-Encoding"] = "identity"
    agent_accept = agent.get("Accept")
    if accept is not None:
        out["Accept"] = accept
    elif agent_accept is not None:
        out["Accept"] = agent_accept
    for name, value in extra:
        out.add(name, value)
    return out


def response_headers(upstream: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The cluster's response headers the agent gets (hop-by-hop and length/encoding dropped)."""
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.items():
        if name.lower() not in RESPONSE_DROPPED:
            out.add(name, value)
    return out

"""The proxy process: the PostgreSQL listener and the Kubernetes API gateway (``proxy/k8s``), one drain on
SIGTERM, one health/metrics endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from shared.approvals.settings import approvals_settings
from shared.pg.wire import framing
from shared.recording import tape

from .admission import LoginGate
from .approvals import ApprovalsClient
from .controlplane import ControlPlaneClient
from .credentials import CredentialCache
from .k8s.gateway import K8sGateway
from .pg.cancel import CancelRegistry
from .pg.catalog import TargetCatalogs
from .pg.context import GuardrailEngines, PgContext
from .pg.session import PgSession
from .pg.tls import PgRecordSSLObject
from .recording import RecordingServices
from .services import Metrics, Services
from .settings import ProxySettings

log = logging.getLogger(__name__)


def agent_tls_context(settings: ProxySettings) -> ssl.SSLContext | None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.sslobject_class = PgRecordSSLObject  # records no larger than PostgreSQL's (libpq relies on it)
    # As PostgreSQL's own server (SSL_OP_NO_TICKET): it issues no tickets, and libpq (a new SSL context per
    # connection) could not use one; each would only cost the handshake another encrypted record.
    ctx.num_tickets = 0
    ctx.options |= ssl.OP_NO_TICKET
    if settings.tls_cert is not None and settings.tls_key is not None:
        ctx.load_cert_chain(settings.tls_cert, settings.tls_key)
        return ctx
    if settings.tls_cert_pem and settings.tls_key_pem is not None:
        # ssl can only load files: write them to a private directory under TMPDIR (on a read-only root
        # filesystem, the task's writable volume) and remove it at once.
        try:
            with tempfile.TemporaryDirectory(prefix="airlock-tls-") as directory:
                cert, key = Path(directory) / "cert.pem", Path(directory) / "key.pem"
                cert.write_text(settings.tls_cert_pem)
                key.touch(mode=0o600)
                key.write_text(settings.tls_key_pem.get_secret_value())
                ctx.load_cert_chain(cert, key)
        except OSError as e:  # FileNotFoundError: no writable temporary directory at all
            raise StartupError(
                f"cannot write the TLS certificate and key to a temporary directory ({e}); point TMPDIR "
                f"(now {os.environ.get('TMPDIR', 'unset')}) at a writable volume"
            ) from e
        return ctx
    return None


class StartupError(Exception):
    """The proxy cannot start with this configuration; the message says what to change."""


class ProxyServer:
    """The process: one listener per protocol (PostgreSQL today), one drain, one health endpoint."""

    def __init__(self, settings: ProxySettings) -> None:
        self.settings = settings
        self.services = Services(
            settings=settings,
            tls_context=agent_tls_context(settings),
            control_plane=ControlPlaneClient(settings.authorize_function, settings.authorize_timeout),
            credentials=CredentialCache(settings.credential_cache_seconds),
            recording=RecordingServices.from_env(settings.proxy_id),
            gate=LoginGate(
                max_total=settings.max_unauthenticated,
                max_per_source=settings.max_unauthenticated_per_source,
                burst=settings.refusal_burst,
                rate=settings.refusal_rate,
            ),
            metrics=Metrics(),
            approvals=ApprovalsClient.from_settings(approvals_settings()),
        )
        catalogs = TargetCatalogs(
            self.services.credentials.get,
            ttl=settings.catalog_ttl_seconds,
            timeout=settings.connect_timeout,
            max_message=settings.max_backend_message,
        )
        self.pg = PgContext(
            self.services, CancelRegistry(), GuardrailEngines(disabled=settings.disable_guardrails), catalogs
        )
        # The Kubernetes API gateway (its own TLS context: it speaks ALPN http/1.1), when a port is set.
        self.k8s = K8sGateway(self.services, agent_tls_context(settings), self.services.approvals) \
            if settings.k8s_port is not None else None  # fmt: skip
        self.sessions: set[PgSession] = set()
        self._server: asyncio.Server | None = None
        self._health: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # background work, cancelled at shutdown
        self._keep: set[asyncio.Task[None]] = set()  # the shutdown itself
        self.stopped = asyncio.Event()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        if self.services.tls_context is None:
            log.warning("no TLS certificate configured: agents cannot authenticate (tokens need TLS)")
        if self.settings.disabled_layers:
            log.warning("UNSAFE: %s disabled for every session of this proxy (diagnostics/benchmarks only)",
                        ", ".join(self.settings.disabled_layers))
        if not framing.COMPILED:
            log.warning("the compiled framer (shared/pg/wire/_framing.c) was not built: relaying uses its slower "
                        "pure-Python twin; reinstall with a C compiler present")  # fmt: skip
        if not tape.COMPILED:
            log.warning("the compiled recording tape (shared/recording/_tape.c) was not built: recording uses its "
                        "slower pure-Python twin; reinstall with a C compiler present")  # fmt: skip
        self.warm()  # before the port opens: the first agent never waits for a client to be built
        # The stream only serves start-up (the relay takes the transport over): a small limit bounds what
        # an unauthenticated agent can make the proxy buffer.
        self._server = await asyncio.start_server(
            self._accept, self.settings.listen_host, self.settings.listen_port, limit=self.settings.startup_read_limit
        )
        self.services.recording.start()
        self._spawn(self._report_refusals(), "airlock-refusal-aggregates")
        if self.k8s is not None:
            await self.k8s.start()
        if self.settings.health_port is not None:
            await self._start_health()
        log.info("airlock proxy listening on %s:%d", self.settings.listen_host, self.port)

    def warm(self) -> None:
        """Create every AWS client the sessions will use (Lambda, Secrets Manager, S3, DynamoDB, KMS)
        while starting, so that ``gc.freeze()`` after start-up covers their service models. Making a
        client reads local files only; no request is sent."""
        self.services.control_plane.warm()
        self.services.credentials.warm()
        self.services.recording.warm()
        if self.services.approvals is not None:
            self.services.approvals.warm()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = PgSession(self.pg, reader, writer)
        self.sessions.add(session)
        self.services.metrics.accepted += 1
        try:
            await session.run()
        finally:
            self.sessions.discard(session)

    async def shutdown(self, drain_seconds: float | None = None) -> None:
        """Stop accepting, let live statements finish (bounded), then close every session."""
        drain = self.settings.drain_seconds if drain_seconds is None else drain_seconds
        self.services.draining = True
        if self._server is not None:
            self._server.close()
        sessions = list(self.sessions)
        log.info("shutting down: %d live sessions, draining up to %.1fs", len(sessions), drain)
        if self.services.approvals is not None:
            # Statements waiting for a human will not run on this proxy: withdraw them (their Slack
            # messages say so) and let their sessions refuse them before they are closed.
            await self.services.approvals.close("the proxy is shutting down")

        async def finish(session: PgSession) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.wait_idle(), drain)
            await session.terminate(
                "57P01", "Airlock proxy is shutting down; reconnect to continue", reason="proxy shutdown"
            )

        k8s = self.k8s.shutdown(drain) if self.k8s is not None else asyncio.sleep(0)
        await asyncio.gather(k8s, *(finish(s) for s in sessions), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        self._flush_refusals()
        # Every live recording is sealed and signed, and the audit trail flushed, before exit.
        await self.services.recording.shutdown()
        await self.pg.catalogs.close()
        if self._health is not None:
            await self._health.cleanup()
        self.stopped.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)

    def _on_signal(self) -> None:
        if not self.services.draining:
            self._spawn(self.shutdown(), "airlock-shutdown", keep=True)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str, *, keep: bool = False) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        (self._keep if keep else self._tasks).add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._keep.discard)

    async def _report_refusals(self) -> None:
        """Refusals the login gate counted instead of recording: one audit line per source and window."""
        while True:
            await asyncio.sleep(self.settings.refusal_window)
            self._flush_refusals()

    def _flush_refusals(self) -> None:
        for aggregate in self.services.gate.take_aggregates():
            log.warning("%s", aggregate.describe())
            self.services.recording.refusals_aggregated(aggregate)

    async def _start_health(self) -> None:
        app = web.Application()

        async def healthz(_: web.Request) -> web.Response:
            serving = self._server is not None and self._server.is_serving()
            return web.Response(status=200 if serving else 503, text="ok\n" if serving else "draining\n")

        async def metrics(_: web.Request) -> web.Response:
            k8s = self.k8s.sessions if self.k8s is not None else 0
            return web.Response(text=self.services.metrics.render(len(self.sessions) + k8s))

        app.add_routes([web.get("/healthz", healthz), web.get("/metrics", metrics)])
        self._health = web.AppRunner(app, access_log=None)
        await self._health.setup()
        assert self.settings.health_port is not None
        await web.TCPSite(self._health, self.settings.listen_host, self.settings.health_port).start()

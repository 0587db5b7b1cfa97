"""The PostgreSQL listener: accepts agents, runs sessions, drains on SIGTERM, serves health/metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from shared.controlplane import Grant
from shared.guard.engine import GuardrailEngine
from shared.pgwire import framing
from shared.recording import tape

from .controlplane import ControlPlaneClient
from .credentials import CredentialCache
from .pg.cancel import CancelRegistry
from .pg.session import PgSession
from .recording import RecordingServices
from .settings import ProxySettings

log = logging.getLogger(__name__)


@dataclass
class Metrics:
    accepted: int = 0
    refused: int = 0
    terminated: int = 0

    def render(self, active: int) -> str:
        return (
            "# TYPE airlock_sessions_active gauge\n"
            f"airlock_sessions_active {active}\n"
            "# TYPE airlock_sessions_accepted_total counter\n"
            f"airlock_sessions_accepted_total {self.accepted}\n"
            "# TYPE airlock_sessions_refused_total counter\n"
            f"airlock_sessions_refused_total {self.refused}\n"
        )


def agent_tls_context(settings: ProxySettings) -> ssl.SSLContext | None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
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
    def __init__(self, settings: ProxySettings) -> None:
        self.settings = settings
        self.tls_context = agent_tls_context(settings)
        self.control_plane = ControlPlaneClient(settings.authorize_function, settings.authorize_timeout)
        self.credentials = CredentialCache(settings.credential_cache_seconds)
        self.cancels = CancelRegistry()
        self.recording = RecordingServices.from_env(settings.proxy_id)
        self.metrics = Metrics()
        self.sessions: set[PgSession] = set()
        self._server: asyncio.Server | None = None
        self._health: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.stopped = asyncio.Event()
        self._engines: dict[tuple[int, str, str, str], GuardrailEngine] = {}

    def guardrails_for(self, grant: Grant) -> GuardrailEngine | None:
        """One engine (and so one decision cache) per policy snapshot and scope, shared by sessions."""
        if grant.guardrails is None or self.settings.disable_guardrails:
            return None
        key = (grant.policy_version, grant.identity, grant.target, grant.database)
        engine = self._engines.get(key)
        if engine is None or engine.policy != grant.guardrails:
            if len(self._engines) >= 256:
                self._engines.clear()
            engine = GuardrailEngine(grant.guardrails, identity=grant.identity, target=grant.target,
                                     database=grant.database)
            self._engines[key] = engine
        return engine

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        if self.tls_context is None:
            log.warning("no TLS certificate configured: agents cannot authenticate (tokens need TLS)")
        if self.settings.disabled_layers:
            log.warning("UNSAFE: %s disabled for every session of this proxy (diagnostics/benchmarks only)",
                        ", ".join(self.settings.disabled_layers))
        if not framing.COMPILED:
            log.warning("the compiled framer (shared/pgwire/_framing.c) was not built: relaying uses its slower "
                        "pure-Python twin; reinstall with a C compiler present")  # fmt: skip
        if not tape.COMPILED:
            log.warning("the compiled recording tape (shared/recording/_tape.c) was not built: recording uses its "
                        "slower pure-Python twin; reinstall with a C compiler present")  # fmt: skip
        self.warm()  # before the port opens: the first agent never waits for a client to be built
        self._server = await asyncio.start_server(
            self._accept, self.settings.listen_host, self.settings.listen_port, limit=self.settings.read_size
        )
        self.recording.start()
        if self.settings.health_port is not None:
            await self._start_health()
        log.info("airlock proxy listening on %s:%d", self.settings.listen_host, self.port)

    def warm(self) -> None:
        """Create every AWS client the sessions will use (Lambda, Secrets Manager, S3, DynamoDB, KMS)
        while starting, so that ``gc.freeze()`` after start-up covers their service models. Making a
        client reads local files only; no request is sent."""
        self.control_plane.warm()
        self.credentials.warm()
        self.recording.warm()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = PgSession(self, reader, writer)
        self.sessions.add(session)
        self.metrics.accepted += 1
        try:
            await session.run()
        finally:
            self.sessions.discard(session)

    async def shutdown(self, drain_seconds: float | None = None) -> None:
        """Stop accepting, let live statements finish (bounded), then close every session."""
        drain = self.settings.drain_seconds if drain_seconds is None else drain_seconds
        if self._server is not None:
            self._server.close()
        sessions = list(self.sessions)
        log.info("shutting down: %d live sessions, draining up to %.1fs", len(sessions), drain)

        async def finish(session: PgSession) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.wait_idle(), drain)
            await session.terminate(
                "57P01", "Airlock proxy is shutting down; reconnect to continue", reason="proxy shutdown"
            )

        await asyncio.gather(*(finish(s) for s in sessions), return_exceptions=True)
        # Every live recording is sealed and signed, and the audit trail flushed, before exit.
        await self.recording.shutdown()
        if self._health is not None:
            await self._health.cleanup()
        self.stopped.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)

    def _on_signal(self) -> None:
        task = asyncio.get_running_loop().create_task(self.shutdown())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_health(self) -> None:
        app = web.Application()

        async def healthz(_: web.Request) -> web.Response:
            serving = self._server is not None and self._server.is_serving()
            return web.Response(status=200 if serving else 503, text="ok\n" if serving else "draining\n")

        async def metrics(_: web.Request) -> web.Response:
            return web.Response(text=self.metrics.render(len(self.sessions)))

        app.add_routes([web.get("/healthz", healthz), web.get("/metrics", metrics)])
        self._health = web.AppRunner(app, access_log=None)
        await self._health.setup()
        assert self.settings.health_port is not None
        await web.TCPSite(self._health, self.settings.listen_host, self.settings.health_port).start()

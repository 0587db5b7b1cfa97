"""One agent connection: start-up, authorization, backend login, then the relay.

Theory of operation.
  admit      before a byte is read, the process's ``LoginGate`` (proxy/admission.py) gives the
             connection a slot among the unauthenticated ones, or it is refused at once (FATAL 53300).
             The slot is held until the session is granted.
  negotiate  SSLRequest -> TLS (or 'N'), GSSENCRequest -> 'N', each at most once (as PostgreSQL; a
             GSSENCRequest inside TLS is refused too), so what is kept before login is bounded;
             CancelRequest -> forwarded, done; StartupMessage -> next. One deadline covers everything
             the agent controls before its password has arrived.
  login      TLS required for passwords. A source whose refused logins spent its budget is refused
             before anything else (53300). AuthenticationCleartextPassword asks for the token; one that
             is neither a JWT nor an Airlock key is refused without asking the control plane. Then
             authorize decides (grant or refusal: FATAL 28000/28P01, the target is never contacted).
             The backend credential comes from Secrets Manager; the backend greeting is replayed to the
             agent with the backend's pid and the proxy's own cancel key. Between these steps the
             session checks that it was not terminated (SIGTERM drain, revocation) meanwhile: a
             terminated login opens nothing more. Refusals before a grant are recorded one by one only
             over TLS and within the source's budget (the rest are counted: see admission.py).
  relay      each socket is taken over by an ``Endpoint`` (proxy/pg/link.py): bytes are framed and
             relayed from ``data_received``, with no future or task switch per read. Each write holds
             only complete messages, so anything the proxy injects (a FATAL on revocation or shutdown)
             lands on a message boundary. Backpressure: a side whose write buffer is full stops the
             other side being read (and a recording that runs ahead of S3 stops its own side), so a slow
             reader bounds memory instead of growing it. Strict recording holds the agent side while a
             statement's bytes are made durable; what arrives meanwhile queues behind it, in order. A
             session nothing inspects (no guardrails, masking or recording) gets the pass-through relay.
  renew      a task re-authorizes before the grant expires; a refusal terminates the session. The
             grant's ``expires_at`` is also a timer of its own, re-armed by each renewal: whatever
             happens to the renew task, no session outlives its grant.
Every byte to or from the agent passes through ``_to_agent``, ``_from_agent`` or ``_from_backend``: the
chokepoints that recording hooks into.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
import time
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from shared.approvals.model import ApprovalRequest, ApprovalStatus
from shared.controlplane import AuthorizeRequest, BackendRef, Grant, RecordingMode
from shared.guard.verdict import Action
from shared.identity.shape import token_shape_problem
from shared.pg.masking.engine import ResultMasker
from shared.pg.relay import (
    PASSTHROUGH_AGENT_WATCH,
    PASSTHROUGH_BACKEND_WATCH,
    AlertEvent,
    DecisionEvent,
    HoldRequest,
    MaskEvent,
    PassthroughRelay,
    Refusal,
    Relay,
    RelayEvent,
    StatementEvent,
    with_protections,
)
from shared.pg.sql.engine import first_block
from shared.pg.startup import (
    PROTOCOL_OPTION_PREFIX,
    SettingJudge,
    StartupOptionsError,
    StartupSetting,
    judge_startup,
    startup_settings,
)
from shared.pg.wire import messages as m
from shared.pg.wire.constants import (
    AUTH_CLEARTEXT,
    AUTH_OK,
    FRONTEND_SMALL,
    FRONTEND_TYPES,
    MAX_STARTUP_PACKET,
    SMALL_MESSAGE_LIMIT,
)
from shared.pg.wire.errors import ProtocolViolation
from shared.pg.wire.framing import Frame, Framer
from shared.recording.format import EventKind, SessionStatus

from ..admission import LoginSlot
from ..approvals import ApprovalRefused, ApprovalsClient, ApprovalsUnavailable
from ..controlplane import ControlPlaneError
from ..credentials import CredentialError
from ..recording import RecordingUnavailable, SessionRecording, SessionStart
from .backend import BackendConnection, BackendError, connect_backend
from .cancel import CancelTarget, new_cancel_key
from .catalog import TargetCatalog
from .context import PgContext
from .headstart import HeadStart, login_fingerprint
from .link import Endpoint
from .wire import MessageReader, PeerClosed, has_buffered_plaintext, read_startup_packet, take_buffered

log = logging.getLogger(__name__)

_RELAY_TYPES = frozenset(FRONTEND_TYPES - {ord("p")})
# Messages that carry or run a statement: in strict mode they wait for the recording to be durable.
_STATEMENTS = frozenset(b"QPFBE")
# Why a side is not being read (besides the other side's full write buffer).
_STRICT = "strict-recording"
_RECORDING = "recording-backpressure"
# A statement waits: for the server to answer what may change how it reads SQL, or for an approval.
_SETTINGS = "statement-waits"
# Everything kept before a grant: at most an SSLRequest, a GSSENCRequest and a StartupMessage (each at
# most MAX_STARTUP_PACKET), one password message (at most SMALL_MESSAGE_LIMIT) and the proxy's few
# answers. The negotiation rules already bound it; this is the backstop.
_EARLY_LIMIT = 3 * MAX_STARTUP_PACKET + SMALL_MESSAGE_LIMIT + 4096
# Renewal starts at ``reauthorize_at`` of the grant's lifetime, and at least this long before expiry
# (half the lifetime for grants shorter than twice this).
_RENEW_MARGIN = 10.0
_SHUTTING_DOWN = "Airlock proxy is shutting down; reconnect to continue"
# The target of a refusal recorded before authorize chose one (the index needs a name; no target has it).
UNRESOLVED_TARGET = "(unresolved)"
_CATALOG = "masking-catalog"
# Backend messages whose masking plan reads the target's catalog: RowDescription, CopyOutResponse.
_PLANNED = frozenset(b"TH")


class SessionEnded(Exception):
    """The session is over; ``error`` (if any) was already sent to the agent."""


class PgSession:
    # The relay phase's endpoints, one per socket (set when the relay starts: ``_relaying``).
    agent_side: Endpoint
    backend_side: Endpoint
    _done: asyncio.Future[None]  # resolved (or failed) when the relay is over

    def __init__(self, ctx: PgContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.ctx = ctx
        self.services = services = ctx.services
        self.settings = services.settings
        self.reader = reader
        self.writer = writer
        self.session_id = f"ses_{uuid.uuid4().hex}"
        peer = writer.get_extra_info("peername")
        self.client_addr = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        # Where the connection comes from, for the login gate's per-source caps and budgets.
        self.source = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        self.identity = ""
        self.grant: Grant | None = None
        self.backend: BackendConnection | None = None
        self.cancel_key: tuple[int, bytes] | None = None
        # Requests sent to the backend that have not had their ReadyForQuery yet.
        self.pending = 0
        self._idle_waiters: list[asyncio.Future[None]] = []
        self.tx_status = b"I"
        self.bytes_in = 0
        self.bytes_out = 0
        self.end_reason = ""
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.tls = False
        self.relay = Relay()
        self.recording: SessionRecording | None = None
        # Start-up bytes seen before the session is granted (and so before its recording exists):
        # (from_agent, bytes) in wire order, replayed into the recording once it opens. Bounded.
        self._early: list[tuple[bool, bytes]] = []
        self._early_bytes = 0
        self._slot: LoginSlot | None = None
        self._refusal: tuple[str, str] | None = None
        self._target: str | None = None  # as the agent named it (None: authorize resolves it)
        self._database = ""
        # What the StartupMessage asks to set (options and parameters), judged once the session is granted.
        self._settings: list[StartupSetting] = []
        self._started_at = datetime.now(UTC)
        # A backend login started while authorize decides (proxy/pg/headstart.py), until adopted or discarded.
        self._head_start: HeadStart | None = None
        # The grant's expiry as a timer of its own (armed at grant, re-armed at each renewal).
        self._deadline: asyncio.TimerHandle | None = None
        # Set-up time per step (milliseconds), logged when the session is granted.
        self._setup: dict[str, float] = {}
        self._mark = time.perf_counter()
        # The relay phase (set up by _relay): one endpoint per socket, framers, strict-mode backlog.
        self._relaying = False
        self._strict = False
        self._agent_backlog: list[bytes] | None = None
        # Messages the relay did not handle yet (a statement waits for the lexing settings), framed.
        self._deferred: tuple[bytes, list[Frame]] | None = None
        # Held statements: how many were asked for, the one waiting now, whether the agent cancelled it.
        self._hold_seq = 0
        self._held_approval: str | None = None
        self._cancelled_hold = False
        # Masking's view of the target's catalog (None: no column rules). Backend reads that need a plan
        # while it is stale wait in ``_backend_backlog`` until it is read again.
        self._catalog: TargetCatalog | None = None
        self._backend_backlog: list[tuple[bytes, list[Frame]]] | None = None
        self._agent_framer = self._backend_framer = Framer(limit=0)

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        started = time.monotonic()
        if self.services.draining:  # accepted as the listener closed
            self._turn_away("57P01", _SHUTTING_DOWN)
            return
        admitted = await self.services.gate.admit(self.source, self.settings.login_wait_seconds)
        if isinstance(admitted, str):
            self._turn_away("53300", f"Airlock: {admitted}")
            return
        self._slot = admitted
        try:
            async with asyncio.timeout(self.settings.startup_timeout):
                startup = await self._negotiate()
                if startup is None:
                    return
                token = await self._read_token(startup)
            await asyncio.wait_for(self._login(startup, token), self.settings.startup_timeout)
            await self._relay()
        except SessionEnded:
            pass
        except TimeoutError:
            self._fatal_nowait("08006", "Airlock: start-up timed out")
            self.end_reason = self.end_reason or "start-up timed out"
        except ProtocolViolation as e:
            self._fatal_nowait(e.sqlstate, str(e))
            self.end_reason = f"protocol violation: {e}"
        except (PeerClosed, ConnectionError, asyncio.IncompleteReadError):
            self.end_reason = self.end_reason or "agent disconnected"
        except ssl.SSLError as e:
            self.end_reason = f"TLS error: {e.reason}"
        except Exception:
            log.exception("session %s failed", self.session_id)
            self._fatal_nowait("XX000", "Airlock: internal error; the session was closed")
            self.end_reason = "internal error"
        finally:
            admitted.release()
            await self._close()
            if self._refusal is not None and self.recording is None:
                await self._record_refusal(*self._refusal)
            log.info(
                "session closed",
                extra={
                    "session_id": self.session_id,
                    "identity": self.identity,
                    "reason": self.end_reason,
                    "bytes_in": self.bytes_in,
                    "bytes_out": self.bytes_out,
                    "seconds": round(time.monotonic() - started, 3),
                },
            )

    def _turn_away(self, sqlstate: str, message: str) -> None:
        """Refuse before reading anything (no TLS handshake, no record of its own; counted)."""
        self.end_reason = f"refused: {message}"
        self.services.gate.refused(self.source, f"{sqlstate} before reading", recordable=False)
        with contextlib.suppress(Exception):
            self.writer.write(m.build_error("FATAL", sqlstate, message))
        self.writer.close()

    async def _record_refusal(self, sqlstate: str, reason: str) -> None:
        """A refused login on record. Before a grant the claimed user name proves nothing: refusals are
        recorded one by one only over TLS and within the source's budget; the rest are counted."""
        if self.grant is None:
            kind = sqlstate if self.tls else f"{sqlstate} without TLS"
            recordable = self.tls and bool(self.identity)
            if not self.services.gate.refused(self.source, kind, recordable=recordable):
                return
        await SessionRecording.refused(self.services.recording, self._session_start(), reason=reason, sqlstate=sqlstate)

    async def _close(self) -> None:
        """Close the agent side once; release the backend and the recording whenever they exist (a login
        that was terminated while it opened one closes it when it notices)."""
        if not self._closed:
            self._closed = True
            if self._deadline is not None:
                self._deadline.cancel()
            current = asyncio.current_task()
            for task in self._tasks:
                if task is not current:
                    task.cancel()
            if self.cancel_key:
                self.ctx.cancels.unregister(*self.cancel_key)
            self._close_backend()
            self.writer.close()
            # Once the relay owns the transport, the stream no longer hears of its closing: the endpoint does.
            closed = self.agent_side.closed if self._relaying else self.writer.wait_closed()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(closed, 2)
            if self._relaying:
                self._finish()
        if self._head_start is not None:
            self._head_start.discard()
        self._close_backend()
        if self.recording is not None:
            await self.recording.close(SessionStatus.CLOSED, reason=self.end_reason or "closed")
        self._wake_idle()

    def _close_backend(self) -> None:
        backend = self.backend
        if backend is not None and not backend.writer.is_closing():
            with contextlib.suppress(Exception):
                backend.writer.write(m.TERMINATE)
            backend.writer.close()

    async def wait_idle(self) -> None:
        """Until no request sent to the backend still owes its ReadyForQuery (or the session ends)."""
        if self.pending and not self._closed:
            waiter = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(waiter)
            await waiter

    def _wake_idle(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def terminate(self, sqlstate: str, message: str, reason: str) -> None:
        """End a live session with a FATAL the agent can read (revocation, shutdown). A session still
        logging in stops at its next step and opens nothing more (``_go_on``)."""
        if self._closed:
            return
        self.end_reason = reason
        extra = {"session_id": self.session_id, "reason": reason}
        log.warning("terminating session %s: %s", self.session_id, reason, extra=extra)
        self._fatal_nowait(sqlstate, message)
        await self._close()

    def _fatal_nowait(self, sqlstate: str, message: str) -> None:
        if self._closed or self.writer.is_closing():
            return
        with contextlib.suppress(Exception):
            self._to_agent(m.build_error("FATAL", sqlstate, message))

    def _to_agent(self, data: bytes) -> None:
        """The one way bytes go to the agent (besides the relay): counted and recorded."""
        self.bytes_out += len(data)
        if self.recording is not None:
            self.recording.proxy_bytes(data)
        elif self.grant is None:
            self._keep_early(False, data)
        self.writer.write(data)

    def _keep_early(self, from_agent: bool, data: bytes) -> None:
        """Start-up bytes, kept until the recording opens; never more than ``_EARLY_LIMIT``."""
        self._early_bytes += len(data)
        if self._early_bytes > _EARLY_LIMIT:
            raise ProtocolViolation("too much data before authentication")
        self._early.append((from_agent, data))

    def _session_start(self) -> SessionStart:
        grant = self.grant
        return SessionStart(
            session_id=self.session_id,
            identity=self.identity,
            target=grant.target if grant else (self._target or UNRESOLVED_TARGET),
            database=grant.database if grant else self._database,
            client_addr=self.client_addr,
            proxy_id=self.settings.proxy_id,
            started_at=self._started_at,
            policy_version=str(grant.policy_version) if grant else "",
        )

    def _on_recording_fatal(self, reason: str) -> None:
        """Buffered recording cannot keep up (S3 unreachable past the bound): end the session, loudly."""
        task = asyncio.get_running_loop().create_task(
            self.terminate(
                "58030",
                f"Airlock ended this session: its recording cannot be stored ({reason})",
                reason=f"recording fault: {reason}",
            )
        )
        self._tasks.append(task)

    def _step(self, name: str) -> None:
        """Charge the time since the previous step to ``name`` (the set-up breakdown)."""
        now = time.perf_counter()
        self._setup[name] = self._setup.get(name, 0.0) + (now - self._mark) * 1000
        self._mark = now

    # ------------------------------------------------------------------ start-up

    async def _negotiate(self) -> m.StartupMessage | None:
        ssl_done = gss_done = False
        while True:
            body = await read_startup_packet(self.reader)
            self._keep_early(True, (len(body) + 4).to_bytes(4, "big") + body)
            packet = m.parse_startup_packet(body)
            if isinstance(packet, m.SSLRequest):
                if self.tls:
                    raise ProtocolViolation("SSLRequest received on an encrypted connection")
                if ssl_done:
                    raise ProtocolViolation("SSLRequest received twice on one connection")
                ssl_done = True
                if has_buffered_plaintext(self.reader):
                    raise ProtocolViolation("received unencrypted data after SSL request")
                context = self.services.tls_context
                if context is None:
                    self._to_agent(b"N")
                    continue
                self._to_agent(b"S")
                await self.writer.drain()
                await self.writer.start_tls(context)
                self.tls = gss_done = True  # as PostgreSQL: no GSSAPI encryption inside TLS
            elif isinstance(packet, m.GSSENCRequest):
                if gss_done:
                    where = "on an encrypted connection" if self.tls else "twice on one connection"
                    raise ProtocolViolation(f"GSSENCRequest received {where}")
                gss_done = True
                # GSSAPI encryption is not offered; the client falls back to TLS or plain.
                self._to_agent(b"N")
            elif isinstance(packet, m.CancelRequest):
                self.end_reason = "cancel request"
                await self.ctx.cancels.cancel(packet.pid, packet.key, self.settings.connect_timeout)
                return None
            else:
                self._step("negotiate")
                return packet

    async def _read_token(self, startup: m.StartupMessage) -> str:
        """Everything the agent controls before the control plane is asked: who it claims to be, where it
        wants to go, and a password shaped like a token."""
        user = startup.params.get("user", "")
        if not user:
            raise self._refuse("28000", "no PostgreSQL user name specified in startup packet")
        self.identity = user
        if "replication" in startup.params and startup.params["replication"].lower() not in ("false", "0", "off", "no"):
            raise self._refuse("28000", "Airlock does not relay replication connections")
        # dbname "target/database" names both (compatibility); a plain name is resolved by authorize: an
        # alias, or the one target that serves that database to this identity. Either way the backend is
        # asked for the real database, and the client keeps the name it sent.
        dbname = startup.params.get("database") or user
        target, _, self._database = dbname.rpartition("/")
        self._target = target or None
        if not self.tls:
            raise self._refuse("28000", "Airlock accepts tokens only over TLS: connect with sslmode=require")
        try:
            self._settings = startup_settings(startup.params)
        except StartupOptionsError as e:
            raise self._refuse(e.sqlstate, f"Airlock refused the connection: {e}") from e
        wait = self.services.gate.throttled(self.source)
        if wait is not None:
            raise self._refuse(
                "53300",
                f"Airlock: too many refused logins from {self.source}; try again in {math.ceil(wait)} s",
            )
        self._to_agent(m.build_authentication(AUTH_CLEARTEXT))
        await self.writer.drain()
        token = await self._read_password()
        self._step("password")
        problem = token_shape_problem(token)
        if problem is not None:
            raise self._refuse("28P01", f"Airlock refused the connection: {problem}")
        return token

    async def _login(self, startup: m.StartupMessage, token: str) -> None:
        self._go_on()
        fingerprint = login_fingerprint(token, startup)
        self._head_start = self._start_backend_early(fingerprint, startup)
        request = AuthorizeRequest(
            identity=self.identity,
            token=SecretStr(token),
            target=self._target,
            database=self._database,
            client_addr=self.client_addr,
            proxy_id=self.settings.proxy_id,
            session_id=self.session_id,
        )
        try:
            answer = await self.services.control_plane.authorize(request)
        except (ControlPlaneError, TimeoutError) as e:
            log.error("authorize failed: %s", e, extra={"session_id": self.session_id})
            raise self._refuse("28000", "Airlock could not authorize this connection: control plane unavailable") from e
        self._step("authorize")
        if answer.decision != "grant" or answer.grant is None:
            self.ctx.head_starts.forget(fingerprint)
            refusal = answer.refusal
            sqlstate, reason = (refusal.sqlstate, refusal.reason) if refusal else ("28000", "refused")
            self.services.metrics.refused += 1
            raise self._refuse(sqlstate, f"Airlock refused the connection: {reason}")
        self.grant = grant = answer.grant
        if not isinstance(grant.backend, BackendRef):
            raise self._refuse("28000", f"Airlock refused the connection: target {grant.target!r} is not PostgreSQL")
        assert self._slot is not None
        self._slot.release()  # authenticated: no longer the login gate's concern
        self._arm_deadline(grant)
        self._go_on()
        verdict = judge_startup(self._settings, self._judge_setting(grant))
        if verdict.refused is not None:
            raise self._refuse("42501", verdict.message())
        await self._open_recording(grant)
        self._step("recording")
        self._go_on()
        try:
            self.relay = await self._relay_for(grant)
        except CredentialError as e:
            log.error("%s", e, extra={"session_id": self.session_id})
            raise self._refuse("08006", "Airlock could not load the masking key; refusing to relay unmasked") from e
        protocol_options = {k: v for k, v in startup.params.items() if k.startswith(PROTOCOL_OPTION_PREFIX)}
        forwarded = {**verdict.allowed, **protocol_options}
        self.backend = backend = await self._connect_backend(grant, forwarded, startup.protocol)
        self._go_on()
        self.ctx.head_starts.remember(fingerprint, _postgres(grant), forwarded, grant.expires_at)
        self._greet(backend)

    def _start_backend_early(self, fingerprint: bytes, startup: m.StartupMessage) -> HeadStart | None:
        """The same token and StartupMessage were granted this backend before: start its login now, while
        authorize decides (proxy/pg/headstart.py says why that sends nothing an unauthorized agent chose)."""
        remembered = self.ctx.head_starts.recall(fingerprint)
        if remembered is None:
            return None
        credential = self.services.credentials.cached(remembered.backend.credential_secret)
        if credential is None:
            return None
        login = connect_backend(
            remembered.backend,
            credential,
            dict(remembered.parameters),
            startup.protocol,
            timeout=self.settings.connect_timeout,
            max_message=self.settings.max_backend_message,
        )
        self.services.metrics.head_starts += 1
        return HeadStart(remembered, login)

    async def _connect_backend(self, grant: Grant, forwarded: dict[str, str], protocol: int) -> BackendConnection:
        """The backend login the grant calls for: the head start if it is that login, else a new one."""
        backend_ref = _postgres(grant)
        if self._head_start is not None:
            early = await self._head_start.adopt(backend_ref, forwarded)
            if early is not None:
                self.services.metrics.head_starts_adopted += 1
                self._step("head start")
                return early
        try:
            credential = await self.services.credentials.get(backend_ref.credential_secret)
        except CredentialError as e:
            log.error("target %s: no backend credential: %s", grant.target, e, extra={"session_id": self.session_id})
            raise self._refuse(
                "08006",
                f"Airlock could not obtain the credential for target {grant.target!r}; an Airlock operator must "
                f"look at it (`airlock targets check {grant.target}`; the proxy log says why)",
            ) from e
        self._step("credential")
        self._go_on()
        try:
            backend = await connect_backend(
                backend_ref,
                credential,
                forwarded,
                protocol,
                timeout=self.settings.connect_timeout,
                max_message=self.settings.max_backend_message,
            )
        except BackendError as e:
            log.error("backend: %s", e, extra={"session_id": self.session_id})
            # The credential may have been rotated: fetch it afresh next time.
            self.services.credentials.invalidate(backend_ref.credential_secret)
            self._to_agent(e.error)
            self.end_reason = f"backend: {e}"
            raise SessionEnded() from e
        self._step("backend")
        return backend

    def _greet(self, backend: BackendConnection) -> None:
        """The backend's greeting, under the proxy's cancel key, tells the agent it is in."""
        grant = self.grant
        assert grant is not None
        for message in backend.greeting:
            if message[:1] == b"S":  # ParameterStatus: client_encoding, standard_conforming_strings, ...
                self.relay.observe_parameter(*m.parse_parameter_status(message[5:]))
        key = new_cancel_key(backend.protocol)
        self.cancel_key = (backend.pid, key)
        self.ctx.cancels.register(
            backend.pid, key, CancelTarget(_postgres(grant), backend.pid, backend.key, intercept=self._intercept_cancel)
        )
        greeting = [
            m.build_authentication(AUTH_OK),
            *backend.greeting,
            m.build_backend_key_data(backend.pid, key),
            m.build_ready_for_query(backend.ready_status),
        ]
        self._to_agent(b"".join(greeting))
        self.tx_status = backend.ready_status
        setup = self._setup
        log.info(
            "session %s granted: %s -> %s/%s, set-up %.1f ms (%s)",
            self.session_id,
            grant.identity,
            grant.target,
            grant.database,
            sum(setup.values()),
            ", ".join(f"{k} {v:.1f}" for k, v in setup.items()),
            extra={
                "session_id": self.session_id,
                "identity": grant.identity,
                "target": grant.target,
                "database": grant.database,
                "policy_version": grant.policy_version,
                "client": self.client_addr,
                "backend_pid": backend.pid,
                "setup_ms": {k: round(v, 2) for k, v in setup.items()},
            },
        )

    def _judge_setting(self, grant: Grant) -> SettingJudge | None:
        """A startup setting is judged like the SET it is, by the session's guardrails (if it has any)."""
        engine = self.ctx.guardrails.for_grant(grant)
        if engine is None:
            return None

        def judge(sql: str) -> str | None:
            blocked = first_block(engine.judge(sql))
            return blocked.message() if blocked is not None else None

        return judge

    def _go_on(self) -> None:
        """Between login steps: a session terminated meanwhile (SIGTERM drain, revocation) goes no further,
        nor does a login on a proxy that has started draining; what it opened so far is closed by
        ``_close``."""
        if self._closed:
            if self.grant is not None and self.recording is None:
                self._refusal = ("57P01", self.end_reason)  # granted, but it never started: say so
            raise SessionEnded()
        if self.services.draining:
            raise self._refuse("57P01", _SHUTTING_DOWN)

    def _arm_deadline(self, grant: Grant) -> None:
        """The grant's ``expires_at`` as a hard deadline of its own, whatever happens to renewal."""
        if self._deadline is not None:
            self._deadline.cancel()
        delay = (grant.expires_at - datetime.now(UTC)).total_seconds()
        self._deadline = asyncio.get_running_loop().call_later(max(delay, 0.0), self._grant_expired, grant)

    def _grant_expired(self, grant: Grant) -> None:
        if self._closed or self.grant is not grant:
            return
        self._spawn(
            self.terminate(
                "57P01",
                f"Airlock terminated this session: its grant expired at {grant.expires_at:%Y-%m-%d %H:%M:%S} UTC "
                "and was not renewed",
                reason="grant expired, not renewed",
            ),
            "expiry",
        )

    async def _masker_for(self, grant: Grant) -> ResultMasker | None:
        if grant.masking is None or not grant.masking.enabled or self.settings.disable_masking:
            self._catalog = None
            return None
        key = None
        if grant.masking.uses_tokens:
            if not grant.masking.token_key_ref:
                raise CredentialError("the masking policy uses tokens but names no token_key_ref")
            key = (await self.services.credentials.get_text(grant.masking.token_key_ref)).encode()
        # Column rules follow lineage, which reads the target's catalog (proxy/pg/catalog.py).
        catalog = self.ctx.catalogs.for_backend(_postgres(grant)) if grant.masking.columns else None
        if catalog is not None:
            catalog.prefetch()
        self._catalog = catalog
        return ResultMasker(grant.masking, token_key=key, catalog=catalog)

    async def _relay_for(self, grant: Grant) -> Relay:
        masker = await self._masker_for(grant)
        guard = self.ctx.guardrails.for_grant(grant)
        if guard is None and masker is None and self.recording is None:
            return PassthroughRelay()
        return Relay(guard, masker)

    async def _open_recording(self, grant: Grant) -> None:
        if self.settings.disable_recording:
            log.warning("UNSAFE: session %s is not recorded (recording disabled on this proxy)", self.session_id)
            self._early.clear()
            return
        try:
            self.recording = await SessionRecording.open(
                self.services.recording,
                self._session_start(),
                mode=grant.recording.value,
                retention_days=grant.retention_days,
                grant=grant.model_dump(mode="json"),
                on_fatal=self._on_recording_fatal,
            )
        except RecordingUnavailable as e:
            log.error("cannot open strict recording: %s", e, extra={"session_id": self.session_id})
            raise self._refuse(
                "58030", "Airlock cannot record this session, and its policy requires strict recording; try again later"
            ) from e
        assert self.recording is not None
        for from_agent, data in self._early:
            if from_agent:
                self.recording.auth_bytes(data)
            else:
                self.recording.proxy_bytes(data)
        self._early.clear()

    async def _read_password(self) -> str:
        framer = Framer(limit=SMALL_MESSAGE_LIMIT, allowed=frozenset({ord("p")}), peer="frontend")
        _, body, whole = await MessageReader(self.reader, framer).read_message()
        self._keep_early(True, whole)
        return m.parse_password_message(body)

    def _refuse(self, sqlstate: str, message: str) -> SessionEnded:
        self._to_agent(m.build_error("FATAL", sqlstate, message))
        self.end_reason = f"refused: {message}"
        if self.recording is None:
            self._refusal = (sqlstate, message)
        return SessionEnded()

    # ------------------------------------------------------------------ relay

    async def _relay(self) -> None:
        backend = self.backend
        assert backend is not None
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        strict = self.grant is not None and self.grant.recording is RecordingMode.STRICT
        self._strict = strict and self.recording is not None
        self._agent_framer = Framer(
            limit=self.settings.max_agent_message,
            allowed=_RELAY_TYPES,
            small_types=FRONTEND_SMALL,
            small_limit=SMALL_MESSAGE_LIMIT,
            peer="frontend",
            watch=PASSTHROUGH_AGENT_WATCH,
        )
        self._backend_framer = Framer(
            limit=self.settings.max_backend_message, peer="backend", watch=PASSTHROUGH_BACKEND_WATCH
        )
        for leftover in backend.messages.take_unconsumed():
            self._to_agent(leftover)
        self.agent_side = agent = Endpoint("agent", self.writer.transport, self._from_agent, self._lost, self._finish)
        self.backend_side = server = Endpoint(
            "backend", backend.writer.transport, self._from_backend, self._lost, self._finish
        )
        agent.peer, server.peer = server, agent
        self._choose_path()
        self._relaying = True
        self._tasks.append(loop.create_task(self._renew(), name=f"{self.session_id}-renew"))
        server.attach(
            backend.messages.framer.take_pending() + take_buffered(backend.reader),
            write_high_water=self.settings.backend_write_high_water,
        )
        agent.attach(take_buffered(self.reader), write_high_water=self.settings.write_high_water)
        await self._done

    def _choose_path(self) -> None:
        """A session nothing inspects (``PassthroughRelay``: no recording, guardrails or masking) takes the
        short path: frame, count, forward, without the relay's ``Output``. Called again whenever the relay
        changes (a policy with guardrails or masking at renewal brings the full path back)."""
        if isinstance(self.relay, PassthroughRelay):
            self.agent_side.handle_with(self._agent_passthrough)
            self.backend_side.handle_with(self._backend_passthrough)
        else:
            self.agent_side.handle_with(self._from_agent)
            self.backend_side.handle_with(self._from_backend)

    def _finish(self, error: BaseException | None = None) -> None:
        """The relay is over (a side closed, a violation was answered, the agent said Terminate)."""
        if self._done.done():
            return
        self.agent_side.stopped = self.backend_side.stopped = True
        if error is None:
            self._done.set_result(None)
        else:
            self._done.set_exception(error)

    def _lost(self, side: Endpoint, exc: Exception | None) -> None:
        if side.name == "agent":
            self.end_reason = self.end_reason or "agent disconnected"
        else:
            self.end_reason = self.end_reason or "target closed the connection"
        self._finish()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.get_running_loop().create_task(coro, name=f"{self.session_id}-{name}"))

    # Agent -> backend. Bytes that arrive while a chunk waits (strict mode: for its recording to be
    # durable) queue behind it, so statements reach the backend in the order the agent sent them.

    def _from_agent(self, data: bytes) -> None:
        # Recorded as it arrives, even when it must wait its turn: every byte the agent sent is in the
        # recording, whether or not the session lived long enough to forward it.
        self.bytes_in += len(data)
        if self.recording is not None:
            self.recording.agent_bytes(data)
        if self._agent_backlog is not None:
            self._agent_backlog.append(data)
            return
        self._agent_chunk(data)

    def _agent_chunk(self, data: bytes) -> None:
        try:
            chunk, frames = self._agent_framer.feed(data)
        except ProtocolViolation as e:
            self._agent_violation(e)
            return
        if self._strict and any(t in _STATEMENTS for t, _, _ in frames):
            self._queue_agent()
            self.agent_side.hold(_STRICT)
            self._spawn(self._forward_when_durable(chunk, frames), "strict")
            return
        self._forward_agent(chunk, frames, None)

    def _queue_agent(self) -> None:
        """From now on, agent data waits in ``_agent_backlog`` (in order) instead of being relayed."""
        if self._agent_backlog is None:
            self._agent_backlog = []

    def _agent_waiting(self) -> bool:
        return self._deferred is not None or self.agent_side.holding(_STRICT)

    def _drain_agent_queue(self) -> None:
        """Relay agent data that queued while a statement waited, in order, until one waits again."""
        while self._agent_backlog is not None and not self._agent_waiting() and not self._done.done():
            if not self._agent_backlog:
                self._agent_backlog = None
                return
            self._agent_chunk(self._agent_backlog.pop(0))

    async def _forward_when_durable(self, chunk: bytes, frames: list[Frame]) -> None:
        """Strict mode: the statement's bytes are in S3 before it may reach the backend."""
        assert self.recording is not None
        refuse = await self._make_durable(self.recording)
        if self._done.done():
            return
        try:
            self.agent_side.release(_STRICT)
            self._forward_agent(chunk, frames, refuse)
            self._drain_agent_queue()
        except Exception as e:
            self._finish(e)

    def _forward_agent(self, chunk: bytes, frames: list[Frame], refuse: Refusal | None) -> None:
        if not frames:
            return
        try:
            result = self.relay.from_agent(chunk, frames, time.time_ns(), refuse)
        except ProtocolViolation as e:
            self._agent_violation(e)
            return
        if result.events:
            self._on_events(result.events)
            if self._catalog is not None:
                self._catalog.expect(
                    (t.schema, t.name)
                    for e in result.events
                    if isinstance(e, DecisionEvent)
                    for t in e.decision.classified.tables
                )
        if result.requests:
            self.pending += result.requests
        if result.to_peer:
            to_peer = result.to_peer
            self.backend_side.transport.write(to_peer[0] if len(to_peer) == 1 else b"".join(to_peer))
            if self._catalog is not None:
                self._catalog.prefetch()  # read a stale catalog while the statement runs
        if result.hold is not None:
            self._spawn(self._seek_approval(result.hold), "approval")
        if result.deferred is not None:
            # The rest waits: until the server has answered what may change how it reads SQL, or until a
            # human has decided a held statement.
            cut = result.deferred
            self._deferred = (chunk[cut:], [(t, s - cut, e - cut) for t, s, e in frames if s - 5 >= cut])
            self._queue_agent()
            self.agent_side.hold(_SETTINGS)
            return
        if result.terminate:
            self.end_reason = "agent terminated"
            self._finish()
            return
        self._check_recording(self.agent_side)

    def _resume_agent(self) -> None:
        """The server answered what the waiting statement depended on: judge and relay it, then the rest."""
        deferred, self._deferred = self._deferred, None
        if deferred is None:
            return
        self.agent_side.release(_SETTINGS)
        self._forward_agent(*deferred, None)
        self._drain_agent_queue()

    def _agent_passthrough(self, data: bytes) -> None:
        """``_from_agent`` for a pass-through session (no recording, so no strict backlog either).

        The framer counts requests and Terminate together; a Terminate is seen when it is the last of
        them in the read, as a client sends it. One followed by more requests in the same read is passed
        on like them, and the backend, which stops at it, ends the session by closing."""
        self.bytes_in += len(data)
        try:
            chunk, watched, last = self._agent_framer.count(data)
        except ProtocolViolation as e:
            self._agent_violation(e)
            return
        if not chunk:
            return
        self.backend_side.transport.write(chunk)
        if watched:
            if chunk[last - 5] == 88:  # 'X' Terminate
                self.pending += watched - 1
                self.end_reason = "agent terminated"
                self._finish()
                return
            self.pending += watched

    def _agent_violation(self, e: ProtocolViolation) -> None:
        self.end_reason = f"protocol violation from agent: {e}"
        log.warning("%s", self.end_reason, extra={"session_id": self.session_id})
        self._fatal_nowait(e.sqlstate, f"Airlock: {e}")
        self._finish()

    # Backend -> agent.

    def _from_backend(self, data: bytes) -> None:
        try:
            chunk, frames = self._backend_framer.feed(data)
        except ProtocolViolation as e:
            self._backend_violation(e)
            return
        if not frames:
            return
        if self._backend_backlog is not None:
            self._backend_backlog.append((chunk, frames))
            return
        catalog = self._catalog
        if catalog is not None and catalog.stale() and any(t in _PLANNED for t, _, _ in frames):
            self._backend_backlog = [(chunk, frames)]
            self.backend_side.hold(_CATALOG)
            self._spawn(self._backend_after_catalog(catalog), "catalog")
            return
        self._relay_backend(chunk, frames)

    async def _backend_after_catalog(self, catalog: TargetCatalog) -> None:
        """Relay the backend reads that waited for the catalog, in order (reading it again whenever a
        statement among them changed the schema)."""
        backlog = self._backend_backlog
        assert backlog is not None
        try:
            while backlog:
                chunk, frames = backlog[0]
                if catalog.stale() and any(t in _PLANNED for t, _, _ in frames):
                    await catalog.refresh()
                    if self._done.done():
                        return
                backlog.pop(0)
                self._relay_backend(chunk, frames)
                if self._done.done():
                    return
        except Exception as e:
            self._finish(e)
            return
        self._backend_backlog = None
        self.backend_side.release(_CATALOG)

    def _relay_backend(self, chunk: bytes, frames: list[Frame]) -> None:
        try:
            result = self.relay.from_backend(chunk, frames, time.time_ns())
        except ProtocolViolation as e:
            self._backend_violation(e)
            return
        if result.events:
            self._on_events(result.events)
        if result.ready:
            self._ready(result.ready, result.tx_status)
        to_peer = result.to_peer
        if to_peer:
            # One write (so one TLS record per 16 KiB, not one per masked row) and one recorded event.
            data = to_peer[0] if len(to_peer) == 1 else b"".join(to_peer)
            self.bytes_out += len(data)
            if self.recording is not None:
                self.recording.proxy_bytes(data)
            self.agent_side.transport.write(data)
            self._check_recording(self.backend_side)
        if result.fatal is not None:
            sqlstate, message = result.fatal
            self.end_reason = f"security: {message}"
            log.error("%s", message, extra={"session_id": self.session_id})
            self._fatal_nowait(sqlstate, message)
            self._finish()
            return
        if result.resume:
            self._resume_agent()

    def _backend_passthrough(self, data: bytes) -> None:
        """``_from_backend`` for a pass-through session: the framer counts ReadyForQuery messages."""
        try:
            chunk, ready, last = self._backend_framer.count(data)
        except ProtocolViolation as e:
            self._backend_violation(e)
            return
        if not chunk:
            return
        if ready:
            self._ready(ready, chunk[last : last + 1])
        self.bytes_out += len(chunk)
        self.agent_side.transport.write(chunk)

    def _ready(self, ready: int, tx_status: bytes) -> None:
        """``ready`` ReadyForQuery messages arrived, the last with ``tx_status``."""
        self.tx_status = tx_status
        self.pending = max(self.pending - ready, 0)
        if not self.pending and self._idle_waiters:
            self._wake_idle()

    def _backend_violation(self, e: ProtocolViolation) -> None:
        self.end_reason = f"protocol violation from backend: {e}"
        log.error("%s", self.end_reason, extra={"session_id": self.session_id})
        self._fatal_nowait("08P01", f"Airlock: {e}")
        self._finish()

    def _check_recording(self, side: Endpoint) -> None:
        """Buffered recording running ahead of the store: stop reading this side until it catches up."""
        recording = self.recording
        if recording is not None and recording.backlogged and not side.holding(_RECORDING):
            side.hold(_RECORDING)
            self._spawn(self._recording_caught_up(recording, side), "backpressure")

    async def _recording_caught_up(self, recording: SessionRecording, side: Endpoint) -> None:
        await recording.backpressure()
        side.release(_RECORDING)

    async def _make_durable(self, recording: SessionRecording) -> Refusal | None:
        """Strict mode: the statement's bytes are in S3 before it may reach the backend."""
        try:
            await recording.before_forward()
        except RecordingUnavailable as e:
            log.error("strict recording failed; refusing statements: %s", e, extra={"session_id": self.session_id})
            return Refusal(
                "58030",
                "Airlock could not record this statement durably (strict recording), so it was not executed; try again",
            )
        return None

    def _on_events(self, events: list[RelayEvent]) -> None:
        """Decisions and finished statements: to the recording (and audit trail), and to the log."""
        recording = self.recording
        for event in events:
            if isinstance(event, StatementEvent):
                if recording is not None:
                    recording.statement(  # positional: once per statement of every session
                        event.text,
                        event.kind or None,
                        event.decision or "allow",
                        event.rows,
                        event.duration_ns,
                        event.error_code,
                    )
            elif isinstance(event, DecisionEvent) and event.decision.action is not Action.ALLOW:
                d = event.decision
                log.info(
                    "statement %s%s by rule %s: %.200r",
                    d.action.value,
                    "" if d.enforced else " (dry run)",
                    d.rule,
                    d.statement,
                    extra={
                        "session_id": self.session_id,
                        "identity": self.identity,
                        "rule": d.rule,
                        "kind": d.kind.value,
                    },
                )
                if recording is not None:
                    recording.decision(
                        EventKind.HOLD if d.action is Action.HOLD else EventKind.BLOCK,
                        {
                            "statement": d.statement,
                            "statement_kind": d.kind.value,
                            "rule": d.rule,
                            "reason": d.reason,
                            "enforced": d.enforced,
                            "dry_run": not d.enforced,
                            "protocol": event.protocol,
                            "sqlstate": "42501" if d.blocks else None,
                        },
                    )
            elif isinstance(event, MaskEvent) and recording is not None:
                recording.decision(EventKind.MASK_COUNTS, {"counts": event.counts})
            elif isinstance(event, AlertEvent):
                log.error("alert: %s %s", event.reason, event.detail,
                          extra={"session_id": self.session_id, "identity": self.identity})
                if recording is not None:
                    recording.decision(EventKind.ALERT, {"reason": event.reason, **event.detail})

    # Held statements: asked for through the approvals service, decided by a human (or by time).

    async def _seek_approval(self, hold: HoldRequest) -> None:
        """Ask for ``hold``, wait for the decision, then let the relay forward or refuse it."""
        try:
            refusal = await self._approval(hold)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("approval of a held statement failed", extra={"session_id": self.session_id})
            refusal = Refusal("42501", f"{hold.decision.message()}: Airlock could not ask for approval; "
                                       "the statement was not executed")  # fmt: skip
        if self._done.done():
            return
        self.relay.settle_hold(hold, refusal)
        self._held_approval, self._cancelled_hold = None, False
        self._resume_agent()

    async def _approval(self, hold: HoldRequest) -> Refusal | None:
        """None when approved (by an approver now, or by an allowance), else the refusal to give."""
        approvals, grant, decision = self.services.approvals, self.grant, hold.decision
        if approvals is None or grant is None or grant.approvals is None:
            return Refusal("42501", f"{decision.message()}: no approvals are configured for this target")
        allowance = await approvals.allowance_for(
            protocol="postgres", identity=grant.identity, target=grant.target, database=grant.database,
            kinds=hold.kinds, tables=hold.tables,
        )
        if allowance is not None:
            try:
                await approvals.record_use(allowance, self.session_id)
            except ApprovalsUnavailable as e:
                log.warning("allowance %s not used: %s", allowance.allowance_id, e)
            else:
                self._approval_event("allowance_used", hold, approval_id=allowance.approval_id,
                                     allowance_id=allowance.allowance_id, decided_by=allowance.granted_by_name
                                     or allowance.granted_by, reason=f"allowance {allowance.allowance_id}")
                return None
        self._hold_seq += 1
        rule = self.relay.guard.rule(decision.rule) if self.relay.guard is not None else None
        request = ApprovalRequest.for_statement(
            hold.text, protocol="postgres", session_id=self.session_id, proxy_id=self.settings.proxy_id,
            identity=grant.identity, target=grant.target, database=grant.database, kinds=hold.kinds,
            tables=hold.tables, rule=decision.rule, reason=decision.reason,
            approvers=(rule.approvers if rule is not None and rule.approvers else None)
            or grant.approvals.default_approvers or "",
            timeout_seconds=grant.approvals.timeout_seconds, idempotency_key=f"{self.session_id}:{self._hold_seq}",
        )
        try:
            held = await approvals.request(request, grant.approvals.where())
        except (ApprovalsUnavailable, ApprovalRefused) as e:
            self._approval_event("unavailable", hold, reason=str(e))
            return Refusal("42501", f"{decision.message()}: it could not be put to an approver ({e}); "
                                    "the statement was not executed")  # fmt: skip
        approval = held.approval
        self._held_approval = approval.approval_id
        self._notice(held.notice)
        self._approval_event("requested", hold, approval_id=approval.approval_id, reason=held.notice,
                             slack_channel=approval.slack_channel, slack_ts=approval.slack_ts,
                             sns_message_id=approval.sns_message_id)
        try:
            state = await approvals.wait(approval.approval_id, approval.expires_at)
        except asyncio.CancelledError:
            # The session is ending (the agent left, the proxy stops): the approvers must know.
            _withdraw_later(approvals, approval.approval_id, self.end_reason or "the agent disconnected")
            raise
        self._approval_event(state.status.value, hold, approval_id=approval.approval_id,
                             decided_by=state.decided_by_name or state.decided_by, decided_via=state.decided_via,
                             reason=state.outcome())
        if state.approved:
            if state.allowance_id:  # "Approve for N minutes": the next statement of this shape uses it
                approvals.forget_allowances(protocol="postgres", identity=grant.identity, target=grant.target,
                                            database=grant.database)
            self._notice(state.outcome())
            return None
        if state.status is ApprovalStatus.WITHDRAWN and self._cancelled_hold:
            return Refusal("57014", "canceling statement due to user request")
        return Refusal("42501", f"{decision.message()}: {state.outcome()}")

    def _intercept_cancel(self) -> bool:
        """A CancelRequest for this session: a held statement has not reached the backend, so cancelling
        it is withdrawing its approval (its Slack message says so); the agent gets 57014 as usual."""
        approvals, approval_id = self.services.approvals, self._held_approval
        if self.relay.holding is None or approvals is None or approval_id is None:
            return False
        self._cancelled_hold = True
        _withdraw_later(approvals, approval_id, "the agent cancelled the statement")
        return True

    def _notice(self, text: str) -> None:
        """A NoticeResponse to the agent (between whole messages, as every write of the relay is)."""
        data = m.build_notice(text, severity="NOTICE")
        self.bytes_out += len(data)
        if self.recording is not None:
            self.recording.proxy_bytes(data)
        self.agent_side.transport.write(data)

    def _approval_event(self, step: str, hold: HoldRequest, **fields: object) -> None:
        log.info("approval %s: %s", step, fields.get("approval_id", ""),
                 extra={"session_id": self.session_id, "rule": hold.decision.rule})
        if self.recording is not None:
            self.recording.decision(EventKind.APPROVAL, {
                "step": step, "statement": hold.text, "statement_kind": hold.decision.kind.value,
                "rule": hold.decision.rule, "protocol": hold.protocol,
                **{k: v for k, v in fields.items() if v is not None},
            })

    async def _renew(self) -> None:
        """Re-authorize before the grant expires; terminate on refusal. An unexpected failure is logged and
        retried: the grant's deadline (``_arm_deadline``) ends the session if renewal never succeeds."""
        while self.grant is not None and not self._closed:
            grant = self.grant
            lifetime = (grant.expires_at - grant.issued_at).total_seconds()
            # The grant's deadline is hard, so a renewal needs time to land: reauthorize_at of the
            # lifetime, but at least _RENEW_MARGIN (or half a short grant's lifetime) before expiry.
            margin = max(lifetime * (1 - self.settings.reauthorize_at), min(_RENEW_MARGIN, lifetime / 2))
            renew_at = grant.issued_at.timestamp() + max(lifetime - margin, 0.5)
            await asyncio.sleep(max(renew_at - time.time(), 0.2))
            try:
                if await self._renew_once(grant):
                    return
            except Exception:
                log.exception("grant renewal failed unexpectedly; retrying", extra={"session_id": self.session_id})
                await asyncio.sleep(1.0)

    async def _renew_once(self, grant: Grant) -> bool:
        """One re-authorization. True: the session is over (refused, or it cannot go on)."""
        request = AuthorizeRequest(
            action="reauthorize",
            identity=grant.identity,
            target=grant.target,
            database=grant.database,
            client_addr=self.client_addr,
            proxy_id=self.settings.proxy_id,
            session_id=self.session_id,
            grant_id=grant.grant_id,
            key_id=grant.key_id,
        )
        try:
            answer = await self.services.control_plane.authorize(request)
        except (ControlPlaneError, TimeoutError) as e:
            if datetime.now(UTC) >= grant.expires_at:
                await self.terminate(
                    "57P01",
                    "Airlock terminated this session: the grant expired and could not be renewed",
                    reason=f"grant expired, renewal failed: {e}",
                )
                return True
            log.warning("grant renewal failed, retrying: %s", e, extra={"session_id": self.session_id})
            await asyncio.sleep(1.0)
            return False
        if answer.decision == "grant" and answer.grant is not None:
            # A new policy version takes effect on live sessions at renewal, not only on new ones.
            masker = self.relay.masker
            if answer.grant.masking != grant.masking:
                try:
                    masker = await self._masker_for(answer.grant)
                except CredentialError as e:  # fail closed: never go on under the old masking
                    await self.terminate(
                        "57P01",
                        "Airlock terminated this session: its new masking policy cannot be applied",
                        reason=f"masking policy changed, masker unavailable: {e}",
                    )
                    return True
            self.grant = answer.grant
            self._arm_deadline(answer.grant)
            self.relay = with_protections(self.relay, self.ctx.guardrails.for_grant(answer.grant), masker)
            self._choose_path()
            if self.recording is not None:
                self.recording.decision(
                    EventKind.REAUTHORIZATION,
                    {
                        "grant_id": answer.grant.grant_id,
                        "policy_version": answer.grant.policy_version,
                        "expires_at": answer.grant.expires_at.isoformat(),
                    },
                )
            return False
        reason = answer.refusal.reason if answer.refusal else "authorization withdrawn"
        sqlstate = answer.refusal.sqlstate if answer.refusal else "28000"
        await self.terminate(sqlstate, f"Airlock terminated this session: {reason}", reason=f"revoked: {reason}")
        return True


def _postgres(grant: Grant) -> BackendRef:
    """The grant's PostgreSQL backend (``_login`` refused any other before this is called)."""
    assert isinstance(grant.backend, BackendRef)
    return grant.backend


_background: set[asyncio.Task[object]] = set()


def _withdraw_later(approvals: ApprovalsClient, approval_id: str, reason: str) -> None:
    """Withdraw an approval from a task of its own (the caller may be cancelled, or must not wait)."""
    task: asyncio.Task[object] = asyncio.get_running_loop().create_task(approvals.withdraw(approval_id, reason))
    _background.add(task)
    task.add_done_callback(_done_withdrawing)


def _done_withdrawing(task: asyncio.Task[object]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("withdrawing an approval failed: %s", task.exception())

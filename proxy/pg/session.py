"""One agent connection: start-up, authorization, backend login, then the relay.

Theory of operation.
  negotiate  SSLRequest -> TLS (or 'N'), GSSENCRequest -> 'N', CancelRequest -> forwarded, done;
             StartupMessage -> next.
  login      TLS required for passwords. AuthenticationCleartextPassword asks for the token; the
             control plane's authorize decides (grant or refusal: FATAL 28000/28P01, the target is never
             contacted). The backend credential comes from Secrets Manager; the backend greeting is
             replayed to the agent with the backend's pid and the proxy's own cancel key.
  relay      each socket is taken over by an ``Endpoint`` (proxy/pg/link.py): bytes are framed and
             relayed from ``data_received``, with no future or task switch per read. Each write holds
             only complete messages, so anything the proxy injects (a FATAL on revocation or shutdown)
             lands on a message boundary. Backpressure: a side whose write buffer is full stops the
             other side being read (and a recording that runs ahead of S3 stops its own side), so a slow
             reader bounds memory instead of growing it. Strict recording holds the agent side while a
             statement's bytes are made durable; what arrives meanwhile queues behind it, in order. A
             session nothing inspects (no guardrails, masking or recording) gets the pass-through relay.
  renew      a task re-authorizes before the grant expires; a refusal terminates the session.
Every byte to or from the agent passes through ``_to_agent``, ``_from_agent`` or ``_from_backend``: the
chokepoints that recording hooks into.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
from shared.pg.wire import messages as m
from shared.pg.wire.constants import (
    AUTH_CLEARTEXT,
    AUTH_OK,
    FRONTEND_SMALL,
    FRONTEND_TYPES,
    SMALL_MESSAGE_LIMIT,
)
from shared.pg.wire.errors import ProtocolViolation
from shared.pg.wire.framing import Frame, Framer
from shared.recording.format import EventKind, SessionStatus

from ..approvals import ApprovalRefused, ApprovalsClient, ApprovalsUnavailable
from ..controlplane import ControlPlaneError
from ..credentials import CredentialError
from ..recording import RecordingUnavailable, SessionRecording, SessionStart
from .backend import BackendConnection, BackendError, connect_backend
from .cancel import CancelTarget, new_cancel_key
from .context import PgContext
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
        # (from_agent, bytes) in wire order, replayed into the recording once it opens.
        self._early: list[tuple[bool, bytes]] = []
        self._refusal: tuple[str, str] | None = None
        self._target = self._database = ""
        self._started_at = datetime.now(UTC)
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
        self._agent_framer = self._backend_framer = Framer(limit=0)

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        started = time.monotonic()
        try:
            startup = await asyncio.wait_for(self._negotiate(), self.settings.startup_timeout)
            if startup is None:
                return
            await asyncio.wait_for(self._login(startup), self.settings.startup_timeout)
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
            await self._close()
            if self._refusal is not None and self.recording is None and self.identity:
                await SessionRecording.refused(
                    self.services.recording, self._session_start(), reason=self._refusal[1], sqlstate=self._refusal[0]
                )
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

    async def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        if self.cancel_key:
            self.ctx.cancels.unregister(*self.cancel_key)
        if self.backend:
            with contextlib.suppress(Exception):
                self.backend.writer.write(m.TERMINATE)
            self.backend.writer.close()
        self.writer.close()
        # Once the relay owns the transport, the stream no longer hears of its closing: the endpoint does.
        closed = self.agent_side.closed if self._relaying else self.writer.wait_closed()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(closed, 2)
        if self._relaying:
            self._finish()
        if self.recording is not None:
            await self.recording.close(SessionStatus.CLOSED, reason=self.end_reason or "closed")
        self._wake_idle()

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
        """End a live session with a FATAL the agent can read (revocation, shutdown)."""
        if self._closed:
            return
        self.end_reason = reason
        log.warning("terminating session", extra={"session_id": self.session_id, "reason": reason})
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
            self._early.append((False, data))
        self.writer.write(data)

    def _session_start(self) -> SessionStart:
        grant = self.grant
        return SessionStart(
            session_id=self.session_id,
            identity=self.identity,
            target=grant.target if grant else self._target,
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

    # ------------------------------------------------------------------ start-up

    async def _negotiate(self) -> m.StartupMessage | None:
        tls = False
        while True:
            body = await read_startup_packet(self.reader)
            self._early.append((True, (len(body) + 4).to_bytes(4, "big") + body))
            packet = m.parse_startup_packet(body)
            if isinstance(packet, m.SSLRequest):
                if tls:
                    raise ProtocolViolation("SSLRequest received on an encrypted connection")
                if has_buffered_plaintext(self.reader):
                    raise ProtocolViolation("received unencrypted data after SSL request")
                context = self.services.tls_context
                if context is None:
                    self._to_agent(b"N")
                    continue
                self._to_agent(b"S")
                await self.writer.drain()
                await self.writer.start_tls(context)
                tls = True
            elif isinstance(packet, m.GSSENCRequest):
                # GSSAPI encryption is not offered; the client falls back to TLS or plain.
                self._to_agent(b"N")
            elif isinstance(packet, m.CancelRequest):
                self.end_reason = "cancel request"
                await self.ctx.cancels.cancel(packet.pid, packet.key, self.settings.connect_timeout)
                return None
            else:
                self.tls = tls
                return packet

    async def _login(self, startup: m.StartupMessage) -> None:
        user = startup.params.get("user", "")
        if not user:
            raise self._refuse("28000", "no PostgreSQL user name specified in startup packet")
        self.identity = user
        if "replication" in startup.params and startup.params["replication"].lower() not in ("false", "0", "off", "no"):
            raise self._refuse("28000", "Airlock does not relay replication connections")
        database = startup.params.get("database") or user
        target, _, db = database.rpartition("/")
        target = target or self.settings.default_target
        self._target, self._database = target, db
        if not self.tls:
            raise self._refuse("28000", "Airlock accepts tokens only over TLS: connect with sslmode=require")
        self._to_agent(m.build_authentication(AUTH_CLEARTEXT))
        await self.writer.drain()
        token = await self._read_password()
        request = AuthorizeRequest(
            identity=user,
            token=SecretStr(token),
            target=target,
            database=db,
            client_addr=self.client_addr,
            proxy_id=self.settings.proxy_id,
            session_id=self.session_id,
        )
        try:
            answer = await self.services.control_plane.authorize(request)
        except (ControlPlaneError, TimeoutError) as e:
            log.error("authorize failed: %s", e, extra={"session_id": self.session_id})
            raise self._refuse("28000", "Airlock could not authorize this connection: control plane unavailable") from e
        if answer.decision != "grant" or answer.grant is None:
            refusal = answer.refusal
            sqlstate, reason = (refusal.sqlstate, refusal.reason) if refusal else ("28000", "refused")
            self.services.metrics.refused += 1
            raise self._refuse(sqlstate, f"Airlock refused the connection: {reason}")
        self.grant = grant = answer.grant
        if not isinstance(grant.backend, BackendRef):
            raise self._refuse("28000", f"Airlock refused the connection: target {grant.target!r} is not PostgreSQL")
        backend_ref = grant.backend
        await self._open_recording(grant)
        try:
            self.relay = await self._relay_for(grant)
        except CredentialError as e:
            log.error("%s", e, extra={"session_id": self.session_id})
            raise self._refuse("08006", "Airlock could not load the masking key; refusing to relay unmasked") from e
        try:
            credential = await self.services.credentials.get(grant.backend.credential_secret)
        except CredentialError as e:
            log.error("target %s: no backend credential: %s", grant.target, e, extra={"session_id": self.session_id})
            raise self._refuse(
                "08006",
                f"Airlock could not obtain the credential for target {grant.target!r}; an Airlock operator must "
                f"look at it (`airlock targets check {grant.target}`; the proxy log says why)",
            ) from e
        try:
            self.backend = backend = await connect_backend(
                backend_ref,
                credential,
                startup.params,
                startup.protocol,
                timeout=self.settings.connect_timeout,
                max_message=self.settings.max_backend_message,
            )
        except BackendError as e:
            log.error("backend: %s", e, extra={"session_id": self.session_id})
            # The credential may have been rotated: fetch it afresh next time.
            self.services.credentials.invalidate(grant.backend.credential_secret)
            self._to_agent(e.error)
            self.end_reason = f"backend: {e}"
            raise SessionEnded() from e
        for message in backend.greeting:
            if message[:1] == b"S":  # ParameterStatus: client_encoding, standard_conforming_strings, ...
                self.relay.observe_parameter(*m.parse_parameter_status(message[5:]))
        key = new_cancel_key(backend.protocol)
        self.cancel_key = (backend.pid, key)
        self.ctx.cancels.register(
            backend.pid, key, CancelTarget(backend_ref, backend.pid, backend.key, intercept=self._intercept_cancel)
        )
        greeting = [
            m.build_authentication(AUTH_OK),
            *backend.greeting,
            m.build_backend_key_data(backend.pid, key),
            m.build_ready_for_query(backend.ready_status),
        ]
        self._to_agent(b"".join(greeting))
        self.tx_status = backend.ready_status
        log.info(
            "session granted",
            extra={
                "session_id": self.session_id,
                "identity": grant.identity,
                "target": grant.target,
                "database": grant.database,
                "policy_version": grant.policy_version,
                "client": self.client_addr,
                "backend_pid": backend.pid,
            },
        )

    async def _masker_for(self, grant: Grant) -> ResultMasker | None:
        if grant.masking is None or not grant.masking.enabled or self.settings.disable_masking:
            return None
        key = None
        if grant.masking.uses_tokens:
            if not grant.masking.token_key_ref:
                raise CredentialError("the masking policy uses tokens but names no token_key_ref")
            key = (await self.services.credentials.get_text(grant.masking.token_key_ref)).encode()
        return ResultMasker(grant.masking, token_key=key)

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
        self._early.append((True, whole))
        return m.parse_password_message(body)

    def _refuse(self, sqlstate: str, message: str) -> SessionEnded:
        self._to_agent(m.build_error("FATAL", sqlstate, message))
        self.end_reason = f"refused: {message}"
        if self.grant is None:
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
        if result.requests:
            self.pending += result.requests
        if result.to_peer:
            to_peer = result.to_peer
            self.backend_side.transport.write(to_peer[0] if len(to_peer) == 1 else b"".join(to_peer))
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
            if not frames:
                return
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
        """Re-authorize before the grant expires; terminate on refusal or when renewal is impossible."""
        while self.grant is not None:
            grant = self.grant
            lifetime = (grant.expires_at - grant.issued_at).total_seconds()
            renew_at = grant.issued_at.timestamp() + max(lifetime * self.settings.reauthorize_at, 0.5)
            await asyncio.sleep(max(renew_at - time.time(), 0.2))
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
                    return
                log.warning("grant renewal failed, retrying: %s", e, extra={"session_id": self.session_id})
                await asyncio.sleep(1.0)
                continue
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
                        return
                self.grant = answer.grant
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
                continue
            reason = answer.refusal.reason if answer.refusal else "authorization withdrawn"
            sqlstate = answer.refusal.sqlstate if answer.refusal else "28000"
            await self.terminate(sqlstate, f"Airlock terminated this session: {reason}", reason=f"revoked: {reason}")
            return


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

"""Sessions of an HTTP API: one agent token on one cluster, from its first request until it goes quiet.

Theory of operation. HTTP has no connection that lasts as long as an agent's work (kubectl opens several,
client-go keeps them alive or not), so a *session* is what a token proves: the first request with a
token for (identity, cluster) authorizes it with the control plane exactly as a PostgreSQL login does (the
token is checked once; only its SHA-256 is kept, as the session's key) and opens one recording; every
later request with the same token is judged under that session's grant and recorded in it, as numbered
exchanges. The session ends when
  - nothing happened for ``k8s_idle_seconds`` (no request, no live stream): the recording is sealed, and a
    later request with the token opens a new session (authorizing afresh);
  - its token expires (an OIDC token's ``exp``, read once the control plane accepted the token);
  - the grant cannot be renewed: a supervisor task re-authorizes before the grant expires, like a
    PostgreSQL session; a refusal (revocation) ends the session *and its live streams* (a watch gets an
    ERROR event, an exec session a Status on its error channel), and the grant's expiry is a hard deadline
    whatever happens to renewal;
  - the recording cannot be stored, or the proxy shuts down.
Opening a session is a login, and passes the proxy's login gate (``proxy/admission.py``) as a
PostgreSQL login does: a bearer token that is not shaped like an Airlock key or an OIDC token is refused
without asking the control plane; a source whose refused logins spent its budget is refused before
authorize is asked (429); at most so many logins are in progress at once, in all and per source; refusals
are recorded one by one within the source's budget and counted beyond it. A token the control plane
refused is also remembered (``REFUSAL_SECONDS``), so a client retrying in a loop costs one authorize call.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import SecretStr

from shared.controlplane import AuthorizeRequest, Grant, KubernetesBackendRef
from shared.identity.keys import looks_like_key
from shared.identity.shape import token_shape_problem
from shared.k8s import status as k8s_status
from shared.k8s.judge import KubernetesJudge
from shared.k8s.objects import ObjectMasker
from shared.k8s.policy import KubernetesAccess, KubernetesGuardrails
from shared.masking.text import TextMasker
from shared.recording.format import Direction, EventKind, SessionStatus

from ..controlplane import ControlPlaneError
from ..credentials import CredentialError
from ..recording import RecordingUnavailable, SessionRecording, SessionStart
from .context import K8sContext

log = logging.getLogger(__name__)

REFUSAL_SECONDS = 5.0
MAX_REMEMBERED_REFUSALS = 10_000
Obj = dict[str, Any]


class GatewayRefusal(Exception):
    """The gateway answers a request itself with a Status (``code``: 401, 403, 503 ...)."""

    def __init__(self, code: int, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason

    @property
    def status(self) -> Obj:
        return k8s_status.failure(self.code, self.message, reason=self.reason)


class LiveStream(Protocol):
    """A request that stays open (a watch, a followed log, an exec stream): the session can end it."""

    def abort(self, status: Obj) -> None: ...


@dataclass(frozen=True, slots=True)
class SessionKey:
    identity: str
    target: str
    token_digest: str


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class K8sSession:
    def __init__(self, ctx: K8sContext, key: SessionKey, client_addr: str) -> None:
        self.ctx = ctx
        self.settings = ctx.services.settings
        self.key = key
        self.client_addr = client_addr
        self.session_id = f"ses_{uuid.uuid4().hex}"
        self.started_at = datetime.now(UTC)
        self.grant: Grant | None = None
        self.judge: KubernetesJudge | None = None
        self.text_masker: TextMasker | None = None
        self.recording: SessionRecording | None = None
        self.exchanges = 0
        self.in_flight = 0
        self.live: set[LiveStream] = set()
        self.last_active = time.monotonic()
        self.token_expires: float | None = None
        self.closed = False
        self.end_reason = ""
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    @property
    def identity(self) -> str:
        return self.key.identity

    @property
    def backend(self) -> KubernetesBackendRef:
        assert self.grant is not None and isinstance(self.grant.backend, KubernetesBackendRef)
        return self.grant.backend

    @property
    def access(self) -> KubernetesAccess:
        assert self.grant is not None
        return self.grant.kubernetes_access or KubernetesAccess()

    def usable(self) -> bool:
        """Open, within its grant, and its token not expired."""
        if self.closed or self.grant is None:
            return False
        now = time.time()
        if self.token_expires is not None and now >= self.token_expires:
            return False
        return datetime.now(UTC) < self.grant.expires_at

    # ------------------------------------------------------------------ open

    async def open(self, token: str) -> None:
        """Authorize the token (GatewayRefusal if refused), open the recording, start supervising."""
        request = AuthorizeRequest(
            action="connect", protocol="kubernetes", identity=self.identity, token=SecretStr(token),
            target=self.key.target, client_addr=self.client_addr, proxy_id=self.settings.proxy_id,
            session_id=self.session_id,
        )  # fmt: skip
        try:
            answer = await self.ctx.services.control_plane.authorize(request)
        except (ControlPlaneError, TimeoutError) as e:
            raise GatewayRefusal(503, f"Airlock cannot authorize requests right now ({e}); try again") from e
        if answer.decision != "grant" or answer.grant is None:
            refusal = answer.refusal
            reason = refusal.reason if refusal else "not authorized"
            code = 401 if refusal is not None and refusal.sqlstate == "28P01" else 403
            raise GatewayRefusal(code, f"Airlock: {reason}")
        grant = answer.grant
        if not isinstance(grant.backend, KubernetesBackendRef):
            raise GatewayRefusal(403, f"Airlock: target {grant.target!r} is not a Kubernetes cluster")
        self.token_expires = _token_expiry(token)
        try:
            await self._apply(grant)
        except CredentialError as e:
            raise GatewayRefusal(503, f"Airlock cannot apply this session's masking policy ({e})") from e
        await self._open_recording(grant)
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(), name=f"{self.session_id}-grant")
        self._supervisor.add_done_callback(self._supervisor_done)
        log.info("kubernetes session granted", extra={"session_id": self.session_id, "identity": self.identity,
                                                      "target": grant.target, "client": self.client_addr})

    async def _apply(self, grant: Grant) -> None:
        """Take ``grant``'s policy snapshot (judge, masking) for the requests that follow."""
        masking = grant.masking
        text: TextMasker | None = None
        if masking is not None and masking.enabled and not self.settings.disable_masking:
            key = None
            if masking.uses_tokens:
                if not masking.token_key_ref:
                    raise CredentialError("the masking policy uses tokens but names no token_key_ref")
                key = (await self.ctx.services.credentials.get_text(masking.token_key_ref)).encode()
            text = TextMasker(masking, key)
        rules = grant.kubernetes or KubernetesGuardrails()
        self.judge = KubernetesJudge(rules, grant.kubernetes_access or KubernetesAccess(), identity=grant.identity,
                                     target=grant.target)  # fmt: skip
        self.text_masker = text
        self.grant = grant

    def object_masker(self) -> ObjectMasker:
        """A masker for one exchange (counts per exchange); Secrets per the binding's ``secrets`` setting."""
        return ObjectMasker(self.text_masker, secrets=self.access.secrets == "redact")

    async def _open_recording(self, grant: Grant) -> None:
        if self.settings.disable_recording:
            log.warning("UNSAFE: session %s is not recorded (recording disabled on this proxy)", self.session_id)
            return
        try:
            self.recording = await SessionRecording.open(
                self.ctx.services.recording, self.start(), mode=grant.recording.value,
                retention_days=grant.retention_days, grant=grant.model_dump(mode="json"),
                on_fatal=self._recording_fatal,
            )  # fmt: skip
        except RecordingUnavailable as e:
            raise GatewayRefusal(503, "Airlock cannot record this session, and its policy requires strict "
                                      "recording; try again later") from e  # fmt: skip

    def start(self) -> SessionStart:
        grant = self.grant
        return SessionStart(
            session_id=self.session_id, identity=self.identity, target=self.key.target, database="",
            client_addr=self.client_addr, proxy_id=self.settings.proxy_id, started_at=self.started_at,
            policy_version=str(grant.policy_version) if grant else "",
        )  # fmt: skip

    # ------------------------------------------------------------------ use

    def begin(self) -> int:
        """A request arrived: its exchange number."""
        self.exchanges += 1
        self.in_flight += 1
        self.last_active = time.monotonic()
        return self.exchanges

    def end(self) -> None:
        self.in_flight -= 1
        self.last_active = time.monotonic()

    def record(self, direction: Direction, kind: EventKind, payload: bytes) -> None:
        if self.recording is not None:
            self.recording.wire(direction, kind, payload)

    def decision(self, kind: EventKind, payload: Obj) -> None:
        if self.recording is not None:
            # An exchange's REQUEST and EXCHANGE_END structure the recording; its audit line is the statement's.
            audit = kind not in (EventKind.REQUEST, EventKind.EXCHANGE_END)
            self.recording.decision(kind, payload, audit=audit)

    async def caught_up(self) -> None:
        """Wait while this session's recording runs ahead of the store (a slow store slows the session)."""
        recording = self.recording
        if recording is not None and recording.backlogged:
            await recording.backpressure()

    # ------------------------------------------------------------------ supervision

    async def _supervise(self) -> None:
        settings = self.settings
        while not self.closed:
            grant = self.grant
            assert grant is not None
            lifetime = (grant.expires_at - grant.issued_at).total_seconds()
            renew_at = grant.issued_at.timestamp() + max(lifetime * settings.reauthorize_at, 0.5)
            idle_at = self.last_active + settings.k8s_idle_seconds
            wake = renew_at - time.time()
            if not self.live and not self.in_flight:
                wake = min(wake, idle_at - time.monotonic())
            if self.token_expires is not None:
                wake = min(wake, self.token_expires - time.time())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(wake, 0.05))
            if self.closed:
                return
            if self.token_expires is not None and time.time() >= self.token_expires:
                await self.close("the token expired", k8s_status.failure(401, "Airlock: the token expired"))
                return
            idle = not self.live and not self.in_flight
            if idle and time.monotonic() >= self.last_active + settings.k8s_idle_seconds:
                await self.close("idle")
                return
            if time.time() >= renew_at:
                await self._renew(grant)

    async def _renew(self, grant: Grant) -> None:
        request = AuthorizeRequest(
            action="reauthorize", protocol="kubernetes", identity=grant.identity, target=grant.target,
            client_addr=self.client_addr, proxy_id=self.settings.proxy_id, session_id=self.session_id,
            grant_id=grant.grant_id, key_id=grant.key_id,
        )  # fmt: skip
        try:
            answer = await self.ctx.services.control_plane.authorize(request)
        except (ControlPlaneError, TimeoutError) as e:
            if datetime.now(UTC) >= grant.expires_at:
                await self.close(f"grant expired, renewal failed: {e}", k8s_status.failure(
                    503, "Airlock ended this session: its grant expired and could not be renewed"))
                return
            log.warning("grant renewal failed, retrying: %s", e, extra={"session_id": self.session_id})
            await asyncio.sleep(1.0)
            return
        if answer.decision == "grant" and answer.grant is not None:
            try:
                await self._apply(answer.grant)
            except CredentialError as e:  # fail closed: never go on under the old masking
                await self.close(f"masking policy changed, masker unavailable: {e}", k8s_status.failure(
                    503, "Airlock ended this session: its new masking policy cannot be applied"))
                return
            self.decision(EventKind.REAUTHORIZATION, {
                "grant_id": answer.grant.grant_id, "policy_version": answer.grant.policy_version,
                "expires_at": answer.grant.expires_at.isoformat()})  # fmt: skip
            return
        reason = answer.refusal.reason if answer.refusal else "authorization withdrawn"
        await self.close(f"revoked: {reason}", k8s_status.failure(401, f"Airlock ended this session: {reason}"))

    def _supervisor_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self.closed:
            return
        error = task.exception()
        log.error("session %s: grant supervision failed (%r); ending the session", self.session_id, error)
        self.spawn(self.close(f"grant supervision failed: {error!r}", k8s_status.failure(
            503, "Airlock ended this session: its grant could not be supervised")))  # fmt: skip

    def _recording_fatal(self, reason: str) -> None:
        self.spawn(self.close(f"recording fault: {reason}", k8s_status.failure(
            503, f"Airlock ended this session: its recording cannot be stored ({reason})")))  # fmt: skip

    def touch(self) -> None:
        """Something changed that the supervisor should look at now (a stream ended)."""
        self._wake.set()

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ close

    async def close(self, reason: str, status: Obj | None = None) -> None:
        """End the session: live streams end with ``status`` (default: 503, session over), then the
        recording is sealed."""
        if self.closed:
            return
        self.closed = True
        self.end_reason = reason
        self.ctx.registry.forget(self)
        ending = status or k8s_status.failure(503, f"Airlock ended this session ({reason})")
        if self.live:
            log.warning("ending %d live streams of session %s: %s", len(self.live), self.session_id, reason)
        for stream in list(self.live):
            stream.abort(ending)
        deadline = time.monotonic() + 5.0
        while self.live and time.monotonic() < deadline:  # noqa: ASYNC110 - streams remove themselves
            await asyncio.sleep(0.02)
        current = asyncio.current_task()
        if self._supervisor is not None and self._supervisor is not current:
            self._supervisor.cancel()
        if self.recording is not None:
            await self.recording.close(SessionStatus.CLOSED, reason=reason)
        log.info("kubernetes session closed", extra={"session_id": self.session_id, "identity": self.identity,
                                                     "reason": reason, "exchanges": self.exchanges})


def _token_expiry(token: str) -> float | None:
    """An OIDC token's ``exp`` (read, not verified: the control plane verified it, and the session's key
    is this exact token)."""
    if looks_like_key(token):
        return None
    try:
        payload = token.split(".")[1]
        exp = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("exp")
    except (IndexError, ValueError, AttributeError):
        return None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


class SessionRegistry:
    """The live sessions of this process, by (identity, cluster, token digest)."""

    def __init__(self, ctx: K8sContext) -> None:
        self.ctx = ctx
        self.sessions: dict[SessionKey, K8sSession] = {}
        self._opening: dict[SessionKey, asyncio.Future[K8sSession]] = {}
        self._refused: OrderedDict[SessionKey, tuple[float, GatewayRefusal]] = OrderedDict()
        self.closing = False

    async def session_for(self, identity: str, target: str, token: str, client_addr: str) -> K8sSession:
        """The token's live session, opened (authorized) on first use; ``GatewayRefusal`` otherwise."""
        if self.closing:
            raise GatewayRefusal(503, "Airlock proxy is shutting down; retry", reason="ServiceUnavailable")
        gate, source = self.ctx.services.gate, client_addr.rpartition(":")[0] or client_addr
        problem = token_shape_problem(token)
        if problem is not None:
            gate.refused(source, "401 token shape", recordable=False)
            raise GatewayRefusal(401, f"Airlock: {problem}")
        key = SessionKey(identity, target, token_digest(token))
        session = self.sessions.get(key)
        if session is not None:
            if session.usable():
                return session
            await session.close("grant or token expired")
        refused = self._refused.get(key)
        if refused is not None:
            if time.monotonic() < refused[0]:
                raise refused[1]
            del self._refused[key]
        opening = self._opening.get(key)
        if opening is not None:
            return await asyncio.shield(opening)
        wait = gate.throttled(source)
        if wait is not None:
            raise GatewayRefusal(429, f"Airlock: too many refused logins from {source}; try again in "
                                      f"{math.ceil(wait)} s")  # fmt: skip
        future: asyncio.Future[K8sSession] = asyncio.get_running_loop().create_future()
        self._opening[key] = future
        try:
            session = await self._login(key, token, client_addr, source)
        except GatewayRefusal as e:
            future.set_exception(e)
            future.exception()  # retrieved: only concurrent first requests wait on it
            raise
        except BaseException as e:
            future.set_exception(GatewayRefusal(503, "Airlock could not open a session; try again"))
            future.exception()
            raise e
        else:
            future.set_result(session)
            return session
        finally:
            del self._opening[key]

    async def _login(self, key: SessionKey, token: str, client_addr: str, source: str) -> K8sSession:
        """Open a session through the login gate (a slot while authorize decides)."""
        gate = self.ctx.services.gate
        admitted = await gate.admit(source, self.ctx.services.settings.login_wait_seconds)
        if isinstance(admitted, str):
            raise GatewayRefusal(503, f"Airlock: {admitted}", reason="ServiceUnavailable")
        session = K8sSession(self.ctx, key, client_addr)
        try:
            await session.open(token)
        except GatewayRefusal as e:
            if e.code in (401, 403):
                self._remember(key, e)
                self.ctx.services.metrics.refused += 1
                if gate.refused(source, str(e.code), recordable=True):
                    await SessionRecording.refused(self.ctx.services.recording, session.start(), reason=e.message,
                                                   sqlstate=str(e.code))  # fmt: skip
            raise
        finally:
            admitted.release()
        self.sessions[key] = session
        self.ctx.services.metrics.accepted += 1
        return session

    def _remember(self, key: SessionKey, refusal: GatewayRefusal) -> None:
        self._refused[key] = (time.monotonic() + REFUSAL_SECONDS, refusal)
        while len(self._refused) > MAX_REMEMBERED_REFUSALS:
            self._refused.popitem(last=False)

    def forget(self, session: K8sSession) -> None:
        if self.sessions.get(session.key) is session:
            del self.sessions[session.key]

    async def close_all(self, reason: str, status: Obj) -> None:
        self.closing = True
        sessions = list(self.sessions.values())
        await asyncio.gather(*(s.close(reason, status) for s in sessions), return_exceptions=True)



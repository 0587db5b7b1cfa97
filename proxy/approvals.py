"""The proxy's side of approvals, for every protocol: ask the approvals Lambda, learn decisions through
ONE watcher per proxy process, find allowances. No protocol code here; gateways call it.

Theory of operation
- ``request`` invokes the approvals Lambda (``lambda.invoke``, RequestResponse, in a worker thread,
  bounded by a timeout) and returns the stored approval and the notice the agent reads. A Lambda that
  times out, fails or answers garbage raises ``ApprovalsUnavailable``; a refusal from the control plane
  (nobody reachable, unknown group, ...) raises ``ApprovalRefused``. Either way the caller refuses the
  statement: approvals fail closed.
- ``wait`` parks a future in ``_waiting`` (approval id -> waiters) and makes sure the watcher runs.
- The watcher is one asyncio task. While anything waits it sleeps ``interval`` (0.25 s), then reads the
  state of every waiting approval with strongly consistent ``BatchGetItem`` calls (one call per 100
  approvals, ten small attributes each, never the statement) and resolves the futures of those that are
  final. A waiter whose deadline passed gets one ``status`` call to the Lambda, which expires the
  approval with a conditional write (so a click racing the deadline either landed or is refused, never
  both) and answers its final state; if the Lambda's clock says "not yet", the waiter withdraws. When
  nothing waits the task ends: zero AWS calls while idle. A failed read is logged and retried at the
  next tick; it never resolves a waiter as approved.
- ``withdraw`` (the agent disconnected or cancelled) asks the Lambda and resolves local waiters with
  the approval's final state, which may still be "approved" if a click beat the withdrawal.
- ``allowance_for`` looks for a live "Approve for N minutes" allowance: one DynamoDB Query per
  (protocol, identity, target, database), cached ``allowance_cache_seconds``, filtered locally by kinds,
  tables and expiry. A lookup error means "no allowance" (the statement is held as usual) and is not
  cached. ``record_use`` counts a use on the allowance item.
- ``close`` (SIGTERM) withdraws everything still waiting and stops the watcher.

Cost with N approvals waiting: 4 x ceil(N / 100) BatchGetItem calls per second (240 per minute for
1..100 waiting) plus one Lambda call per deadline reached; nothing while none wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from pydantic import ValidationError

from shared.approvals.dynamo import MAX_BATCH, DynamoAllowanceUses, DynamoApprovalStates
from shared.approvals.model import (
    Allowance,
    Approval,
    ApprovalRequest,
    ApprovalsResult,
    ApprovalState,
    ApprovalStatus,
    RequestCall,
    StatusCall,
    WithdrawCall,
    allowance_scope,
)
from shared.approvals.settings import ApprovalsSettings
from shared.approvals.store import AllowanceUses, ApprovalStates
from shared.store.base import StoreError

from .invoke import InvokeError, LambdaInvoker

log = logging.getLogger(__name__)


class ApprovalsUnavailable(Exception):
    """The approvals service could not be asked or read: refuse the statement (fail closed)."""


class ApprovalRefused(Exception):
    """The approvals service declined the request (``code`` as in ``ApprovalsResult.error``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Held(NamedTuple):
    """A held statement's approval, and the notice to send the agent while it waits."""

    approval: Approval
    notice: str


@dataclass
class WatchStats:
    """AWS calls made, for metrics and for the "what does waiting cost" question."""

    state_reads: int = 0  # BatchGetItem calls
    lambda_calls: int = 0
    allowance_queries: int = 0
    read_errors: int = 0


@dataclass
class _Waiter:
    future: asyncio.Future[ApprovalState]
    deadline: float  # loop.time()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ApprovalsClient:
    """One per proxy process (it owns the one watcher); safe to share between all sessions."""

    def __init__(
        self,
        invoker: LambdaInvoker,
        approvals: ApprovalStates,
        allowances: AllowanceUses,
        *,
        interval: float = 0.25,
        allowance_cache_seconds: float = 2.0,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.invoker = invoker
        self.approvals = approvals
        self.allowances = allowances
        self.interval = interval
        self.allowance_cache_seconds = allowance_cache_seconds
        self.clock = clock
        self.stats = WatchStats()
        self._waiting: dict[str, list[_Waiter]] = {}
        self._concluding: set[str] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._allowance_cache: dict[str, tuple[float, list[Allowance]]] = {}

    @classmethod
    def from_settings(cls, settings: ApprovalsSettings, *, timeout: float = 10.0) -> ApprovalsClient:
        """Configured from ``AIRLOCK_*`` (function and table names, watch interval, allowance cache)."""
        return cls(
            LambdaInvoker(settings.approvals_function, timeout, "approvals"),
            DynamoApprovalStates(settings),
            DynamoAllowanceUses(settings),
            interval=settings.approvals_watch_interval,
            allowance_cache_seconds=settings.allowance_cache_seconds,
        )

    def warm(self) -> None:
        """Create the Lambda client at start-up, not on the first held statement."""
        self.invoker.warm()

    # ------------------------------------------------------------------ Lambda calls

    async def _call(self, call: RequestCall | WithdrawCall | StatusCall) -> Approval:
        self.stats.lambda_calls += 1
        try:
            body = await self.invoker.invoke(call.model_dump_json().encode())
        except InvokeError as e:
            raise ApprovalsUnavailable(f"approvals are unavailable ({e}); the statement is refused") from e
        try:
            result = ApprovalsResult.model_validate_json(body)
        except (ValidationError, ValueError) as e:
            raise ApprovalsUnavailable("the approvals service answered something unusable") from e
        if not result.ok or result.approval is None:
            if result.error == "unavailable":
                raise ApprovalsUnavailable(result.message or "approvals are unavailable")
            raise ApprovalRefused(result.error or "invalid", result.message or "approval refused")
        return result.approval

    async def request(self, request: ApprovalRequest, where: str) -> Held:
        """Ask for an approval; ``where`` names the channels for the notice (``ApprovalsGrant.where()``)."""
        approval = await self._call(RequestCall(request=request))
        return Held(approval, approval.notice(where))

    async def withdraw(self, approval_id: str, reason: str) -> ApprovalState:
        """Withdraw (idempotent); returns the final state, which a click may have made "approved"."""
        state = (await self._call(WithdrawCall(approval_id=approval_id, reason=reason[:512]))).state()
        self._resolve(approval_id, state)
        return state

    async def status(self, approval_id: str) -> Approval:
        """The approval as the control plane sees it (expired on the way if its time is up)."""
        return await self._call(StatusCall(approval_id=approval_id))

    # ------------------------------------------------------------------ waiting

    async def wait(self, approval_id: str, deadline: datetime) -> ApprovalState:
        """The approval's final state: approved, denied, expired or withdrawn. ``deadline`` is usually
        the approval's ``expires_at``; an earlier one withdraws it then. Cancelling the caller only
        stops waiting (withdraw explicitly when the agent goes away)."""
        loop = asyncio.get_running_loop()
        remaining = (deadline - self.clock()).total_seconds()
        waiter = _Waiter(loop.create_future(), loop.time() + max(0.0, remaining))
        self._waiting.setdefault(approval_id, []).append(waiter)
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="approvals-watcher")
        try:
            return await waiter.future
        finally:
            waiters = self._waiting.get(approval_id)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiting[approval_id]

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _resolve(self, approval_id: str, state: ApprovalState) -> None:
        for waiter in self._waiting.pop(approval_id, []):
            if not waiter.future.done():
                waiter.future.set_result(state)

    async def _watch(self) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(self.interval)
                ids = list(self._waiting)
                for start in range(0, len(ids), MAX_BATCH):
                    await self._read(ids[start : start + MAX_BATCH])
                now = asyncio.get_running_loop().time()
                for approval_id, waiters in list(self._waiting.items()):
                    if approval_id not in self._concluding and any(w.deadline <= now for w in waiters):
                        self._concluding.add(approval_id)
                        self._spawn(self._conclude(approval_id))
        finally:
            self._watcher = None

    async def _read(self, ids: list[str]) -> None:
        self.stats.state_reads += 1
        try:
            states = await asyncio.to_thread(self.approvals.states, ids)
        except StoreError as e:
            self.stats.read_errors += 1
            log.warning("reading %d waiting approvals failed (retrying): %s", len(ids), e)
            return
        for approval_id, state in states.items():
            if state.status.final:
                self._resolve(approval_id, state)

    async def _conclude(self, approval_id: str) -> None:
        """A waiter's deadline passed: ask the Lambda for the final state (it expires a due approval)."""
        try:
            approval = await self.status(approval_id)
            state = approval.state()
            if not state.status.final:  # an earlier deadline than expiry, or clocks apart: withdraw
                stopped = WithdrawCall(approval_id=approval_id, reason="the agent stopped waiting")
                state = (await self._call(stopped)).state()
        except (ApprovalsUnavailable, ApprovalRefused) as e:
            log.error("approval %s: deadline passed and its state is unknown (%s); refusing", approval_id, e)
            state = ApprovalState(approval_id, ApprovalStatus.EXPIRED, self.clock(),
                                  decision_reason=f"its state could not be confirmed ({e})")  # fmt: skip
        finally:
            self._concluding.discard(approval_id)
        self._resolve(approval_id, state)

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, reason: str = "the proxy is shutting down") -> None:
        """Withdraw every waiting approval (each waiter gets its final state) and stop the watcher."""
        ids = list(self._waiting)
        results = await asyncio.gather(*(self.withdraw(i, reason) for i in ids), return_exceptions=True)
        for approval_id, result in zip(ids, results, strict=True):
            if isinstance(result, BaseException):
                log.error("withdrawing %s at shutdown failed: %s", approval_id, result)
        for approval_id in list(self._waiting):
            self._resolve(approval_id, ApprovalState(approval_id, ApprovalStatus.WITHDRAWN, self.clock(),
                                                     decision_reason=reason))  # fmt: skip
        for task in [*self._tasks, *([self._watcher] if self._watcher else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ allowances

    async def allowance_for(
        self,
        *,
        protocol: str,
        identity: str,
        target: str,
        database: str,
        kinds: Iterable[str],
        tables: Iterable[str],
    ) -> Allowance | None:
        """A live allowance covering a statement with these kinds and tables, or None (also on errors)."""
        scope = allowance_scope(protocol, identity, target, database)
        now_mono = time.monotonic()
        hit = self._allowance_cache.get(scope)
        if hit is None or now_mono - hit[0] >= self.allowance_cache_seconds:
            self.stats.allowance_queries += 1
            try:
                found = await asyncio.to_thread(self.allowances.active_in_scope, scope, self.clock())
            except StoreError as e:
                log.warning("allowance lookup failed; holding as usual: %s", e)
                return None
            hit = (now_mono, found)
            self._allowance_cache[scope] = hit
        wanted_kinds, wanted_tables, now = set(kinds), set(tables), self.clock()
        return next((a for a in hit[1] if a.covers(wanted_kinds, wanted_tables, now)), None)

    def forget_allowances(self, *, protocol: str, identity: str, target: str, database: str) -> None:
        """Drop the cached allowances of a scope (an approval just created one: use it at once)."""
        self._allowance_cache.pop(allowance_scope(protocol, identity, target, database), None)

    async def record_use(self, allowance: Allowance, session_id: str) -> None:
        """Count one use on the allowance item; ``ApprovalsUnavailable`` if that write failed."""
        try:
            await asyncio.to_thread(self.allowances.record_use, allowance.allowance_id, session_id, self.clock())
        except StoreError as e:
            raise ApprovalsUnavailable(f"recording a use of {allowance.allowance_id} failed: {e}") from e


def watcher_calls_per_minute(waiting: int, interval: float = 0.25) -> int:
    """BatchGetItem calls per minute the watcher makes with ``waiting`` approvals outstanding."""
    return 0 if waiting <= 0 else round(60 / interval) * math.ceil(waiting / MAX_BATCH)

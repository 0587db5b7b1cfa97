"""What a stranger may cost the proxy before logging in: the login gate.

Theory of operation. Every accepted connection asks ``LoginGate.admit`` for a ``LoginSlot`` before the
proxy reads a byte from it. A slot is held until the control plane grants the session (or the
connection ends): at most ``max_total`` connections are unauthenticated at once, and at most
``max_per_source`` of them come from one address. A connection that finds no free slot waits for one
(first come, first served; at most ``wait`` seconds), unread, so an honest burst of logins (a pool
opening fifty connections) is smoothed rather than refused. At most as many connections may wait as may
hold slots, in all and per source; beyond that a connection is refused at once (FATAL 53300, written
before any TLS handshake), so a flood costs one accept and one small write per attempt, and memory
stays bounded by the caps.

Refused logins are the second budget. Each source address has a token bucket (``burst`` tokens,
refilled at ``rate`` per second). A refusal that finds a token is recorded one by one (index item and
audit line, as before); one that does not is only counted. While a source's bucket is empty its new
logins are refused before the control plane is asked (``throttled``), so a stranger spends neither
Lambda invocations nor DynamoDB writes faster than the bucket refills. Counted refusals come back out
of ``take_aggregates`` as one line per source and window, so the audit trail still says how many there
were, from where, and why. Connections refused before TLS (caps, plaintext) are never recorded one by
one: anyone can claim any user name in plaintext, so they only ever reach the aggregate.

Protocol-neutral: any gateway's sessions use it. Single-threaded (the event loop's).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

# Sources remembered at once (buckets and aggregates). Beyond it the least recently seen are merged into
# one "*" entry: counting never stops, and memory does not grow with the number of addresses.
MAX_SOURCES = 4096
OTHER_SOURCES = "*"


@dataclass(frozen=True, slots=True)
class RefusalAggregate:
    """Refusals from one source that were counted but not recorded one by one."""

    source: str
    count: int
    first: float  # wall-clock seconds
    last: float
    reasons: tuple[tuple[str, int], ...]  # (reason, count), most frequent first

    def describe(self) -> str:
        why = ", ".join(f"{reason}: {n}" for reason, n in self.reasons)
        return f"{self.count} refused connections from {self.source} not recorded one by one (rate limit): {why}"


@dataclass(slots=True)
class _Source:
    tokens: float
    updated: float  # monotonic
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)


class LoginSlot:
    """One unauthenticated connection's place in the gate; ``release`` is idempotent."""

    __slots__ = ("_gate", "source")

    def __init__(self, gate: LoginGate, source: str) -> None:
        self._gate: LoginGate | None = gate
        self.source = source

    def release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate._release(self.source)


class LoginGate:
    def __init__(
        self,
        *,
        max_total: int,
        max_per_source: int,
        burst: int,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.max_total = max_total
        self.max_per_source = max_per_source
        self.burst = burst
        self.rate = rate
        self._clock = clock
        self._wall = wall
        self.unauthenticated = 0
        self._per_source: dict[str, int] = {}
        # Connections waiting for a slot, in arrival order, and how many per source.
        self._queue: deque[tuple[str, asyncio.Future[LoginSlot]]] = deque()
        self._waiting: dict[str, int] = {}
        self._sources: OrderedDict[str, _Source] = OrderedDict()

    # ------------------------------------------------------------------ concurrency caps

    async def admit(self, source: str, wait: float) -> LoginSlot | str:
        """A slot for a new connection from ``source`` (waiting up to ``wait`` seconds), or why not."""
        if self._free_for(source):
            return self._take(source)
        if len(self._queue) >= self.max_total:
            return f"too many connections are logging in to this proxy ({self.max_total}); try again later"
        if self._waiting.get(source, 0) >= self.max_per_source:
            return f"too many connections from {source} are logging in at once ({self.max_per_source}); try again later"
        waiter: asyncio.Future[LoginSlot] = asyncio.get_running_loop().create_future()
        entry = (source, waiter)
        self._queue.append(entry)
        self._waiting[source] = self._waiting.get(source, 0) + 1
        slot: LoginSlot | None = None
        try:
            async with asyncio.timeout(wait):
                slot = await waiter
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():  # handed a slot just as the wait ran out
                waiter.result().release()
        finally:
            self._unqueue(entry)
        return slot or f"no place to log in on this proxy within {wait:g} s; try again later"

    def _free_for(self, source: str) -> bool:
        return self.unauthenticated < self.max_total and self._per_source.get(source, 0) < self.max_per_source

    def _take(self, source: str) -> LoginSlot:
        self.unauthenticated += 1
        self._per_source[source] = self._per_source.get(source, 0) + 1
        return LoginSlot(self, source)

    def _unqueue(self, entry: tuple[str, asyncio.Future[LoginSlot]]) -> None:
        try:
            self._queue.remove(entry)
        except ValueError:
            return
        source = entry[0]
        left = self._waiting[source] - 1
        if left:
            self._waiting[source] = left
        else:
            del self._waiting[source]

    def _release(self, source: str) -> None:
        self.unauthenticated -= 1
        held = self._per_source.get(source, 0) - 1
        if held > 0:
            self._per_source[source] = held
        else:
            self._per_source.pop(source, None)
        # The first waiter that may take the freed place gets it (a waiter from a source at its own cap
        # does not hold up the others).
        for entry in self._queue:
            waiting_source, waiter = entry
            if not waiter.done() and self._free_for(waiting_source):
                self._unqueue(entry)
                waiter.set_result(self._take(waiting_source))
                return

    # ------------------------------------------------------------------ refusal budget

    def throttled(self, source: str) -> float | None:
        """Seconds until ``source`` may try to log in again, if its refusal budget is spent."""
        entry = self._sources.get(source)
        if entry is None:
            return None
        self._refill(entry)
        if entry.tokens >= 1:
            return None
        return (1 - entry.tokens) / self.rate if self.rate > 0 else float("inf")

    def refused(self, source: str, reason: str, *, recordable: bool) -> bool:
        """Count one refusal from ``source``. True: record it one by one (``recordable`` and the source's
        budget had a token left); False: it is only counted, and will be part of an aggregate."""
        entry = self._entry(source)
        self._refill(entry)
        if recordable and entry.tokens >= 1:
            entry.tokens -= 1
            return True
        now = self._wall()
        entry.first = entry.first or now
        entry.last = now
        entry.count += 1
        entry.reasons[reason] += 1
        return False

    def take_aggregates(self) -> list[RefusalAggregate]:
        """What was counted since the last call, one aggregate per source (and the counts reset)."""
        out = []
        for source, entry in self._sources.items():
            if entry.count:
                out.append(
                    RefusalAggregate(source, entry.count, entry.first, entry.last, tuple(entry.reasons.most_common()))
                )
                entry.count, entry.first, entry.last = 0, 0.0, 0.0
                entry.reasons.clear()
        self._forget_idle()
        return out

    def _entry(self, source: str) -> _Source:
        entry = self._sources.get(source)
        if entry is None:
            if len(self._sources) >= MAX_SOURCES:
                self._merge_oldest()
            entry = self._sources[source] = _Source(tokens=float(self.burst), updated=self._clock())
        self._sources.move_to_end(source)
        return entry

    def _refill(self, entry: _Source) -> None:
        now = self._clock()
        entry.tokens = min(float(self.burst), entry.tokens + (now - entry.updated) * self.rate)
        entry.updated = now

    def _merge_oldest(self) -> None:
        """Make room: the least recently seen source's counts move to the shared "*" entry."""
        for source in self._sources:
            if source != OTHER_SOURCES:
                break
        else:
            return
        old = self._sources.pop(source)
        if old.count:
            other = self._sources.get(OTHER_SOURCES)
            if other is None:
                other = self._sources[OTHER_SOURCES] = _Source(tokens=0.0, updated=self._clock())
            other.count += old.count
            other.first = min(other.first or old.first, old.first)
            other.last = max(other.last, old.last)
            other.reasons.update(old.reasons)

    def _forget_idle(self) -> None:
        """Sources with a full bucket and nothing counted are as good as new: forget them."""
        for source in [s for s, e in self._sources.items() if not e.count]:
            entry = self._sources[source]
            self._refill(entry)
            if entry.tokens >= self.burst:
                del self._sources[source]

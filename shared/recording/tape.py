"""A session recording's hot path: the pending events of ``SessionRecorder`` and its statement lines.

Theory of operation. Every read the proxy relays becomes an event (``agent``/``proxy``), and every
statement an audit line (``statement``): twice and once per statement of every session. A ``Tape``
holds what those calls change (the pending events, encoded as ``EVENT_HEADER`` + payload each, the
sequence numbers, byte and statement counts) so that each call is one call into compiled code
(shared/recording/_tape.c) instead of several Python frames. ``TapePy`` is its pure-Python twin: the
contract in runnable form, what runs where no C compiler built the extension, and what the tests hold
the compiled type to.

- ``wire(direction, data)`` and ``append(direction, kind, payload, ts_ns)`` add an event (``append``
  with ``ts_ns=None`` stamps it now) and return True once the pending events reach ``chunk_size``;
  events in a wire direction count their payload's bytes.
- ``agent(data)`` / ``proxy(data)``: the relay's calls. While ``open``, non-empty ``data`` becomes a
  WIRE event, and ``on_full()`` is called when it filled a chunk; once ``open`` is False (the session
  is sealed) they are ignored, as is ``statement``.
- ``take(head)``: ``head`` followed by the pending events, which are cleared.
- ``lines(prefix, limit, sink, fallback)`` sets up ``statement``: it counts the statement and calls
  ``sink(date, line)`` with the line ``fallback`` (``StatementLines.line``) makes for it, stamped now.
  The compiled type writes the line itself when every text field is ASCII and the statement needs no
  cutting to ``limit`` bytes; ``prefix`` is then ``StatementLines.encoded_prefix()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from .format import EVENT_HEADER, EventKind

_PACK_HEADER: Final = EVENT_HEADER.pack
_WIRE: Final = int(EventKind.WIRE)

Sink = Callable[[str, bytes], object]
LineMaker = Callable[[int, str, str | None, str | None, int | None, int | None, str | None], tuple[str, bytes]]


class TapePy:
    """The pure-Python ``Tape`` (see the module docstring)."""

    __slots__ = ("_clock", "_fallback", "_pending", "_sink", "bytes_agent", "bytes_proxy", "chunk_size",
                 "first_seq", "first_ts", "next_seq", "on_full", "open", "statements")  # fmt: skip

    def __init__(self, chunk_size: int, clock: Callable[[], int] | None = None) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self.chunk_size = chunk_size
        self._clock = clock or time.time_ns
        self._pending = bytearray()
        self.next_seq = self.first_seq = self.first_ts = 0
        self.bytes_agent = self.bytes_proxy = self.statements = 0
        self.open = True
        self.on_full: Callable[[], object] | None = None
        self._sink: Sink | None = None
        self._fallback: LineMaker | None = None

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)

    def wire(self, direction: int, data: bytes, /) -> bool:
        if direction not in (0, 1):
            raise ValueError("wire bytes need a wire direction")
        return self.append(direction, _WIRE, data, None)

    def agent(self, data: bytes, /) -> None:
        if self.open and data and self.wire(0, data) and self.on_full is not None:
            self.on_full()

    def proxy(self, data: bytes, /) -> None:
        if self.open and data and self.wire(1, data) and self.on_full is not None:
            self.on_full()

    def append(self, direction: int, kind: int, payload: bytes, ts_ns: int | None, /) -> bool:
        seq = self.next_seq
        ts = self._clock() if ts_ns is None else ts_ns
        try:
            header = _PACK_HEADER(seq, ts, direction, kind, len(payload))
        except Exception as e:  # struct.error, as the compiled type's ValueError
            raise ValueError(f"event {seq}: field out of range: {e}") from e
        if not self._pending:
            self.first_seq, self.first_ts = seq, ts
        self._pending += header
        self._pending += payload
        self.next_seq = seq + 1
        if direction == 0:
            self.bytes_agent += len(payload)
        elif direction == 1:
            self.bytes_proxy += len(payload)
        return len(self._pending) >= self.chunk_size

    def count(self, n: int, /) -> None:
        if n < 0:
            raise OverflowError("can't count a negative number of statements")
        self.statements += n

    def take(self, head: bytes = b"", /) -> bytes:
        data = bytes(head) + self._pending
        self._pending = bytearray()
        return data

    def lines(self, prefix: bytes, limit: int, sink: Sink, fallback: LineMaker, /) -> None:
        self._sink, self._fallback = sink, fallback

    def statement(
        self,
        text: str,
        kind: str | None = None,
        decision: str | None = "allow",
        rows: int | None = None,
        duration_ns: int | None = None,
        error_code: str | None = None,
    ) -> None:
        if not self.open:
            return
        self.statements += 1
        if self._sink is not None and self._fallback is not None:
            self._sink(*self._fallback(self._clock(), text, kind, decision, rows, duration_ns, error_code))


Tape: type[TapePy]
try:  # the compiled twin (shared/recording/_tape.c); the pure-Python one where it was not built
    from ._tape import Tape

    COMPILED = True
except ImportError:  # pragma: no cover - depends on the build
    Tape = TapePy
    COMPILED = False

__all__ = ["COMPILED", "LineMaker", "Sink", "Tape", "TapePy"]

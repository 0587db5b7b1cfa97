"""The prefilter on whole read buffers, compiled into one Hyperscan database.

Theory of operation: the prefilter (``detectors.candidate_kinds``) asks a handful of questions of a buffer:
is there a digit shape a card, IBAN or SSN needs, a run of 20 token characters, an '@' between address
characters? In pure Python that is two ``bytes.translate`` passes and several substring searches, about
4.5 ns per byte of a result buffer full of dates and numbers (the searches' needles are all '0' there).
Hyperscan answers all of them in one pass of a compiled automaton, about 1.5 ns per byte on the same
buffer. Its patterns are built from the same character classes as the Python prefilter and decide
exactly the same thing (a property test holds the two to each other), so either may run.

The database is compiled once per process; scratch space is per thread, as Hyperscan requires. Where the
``hyperscan`` wheel does not exist for the platform, ``BufferScanner.build`` returns None and the Python
prefilter runs alone.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

try:
    import hyperscan

    AVAILABLE = True
except ImportError:  # no wheel for this platform: the Python prefilter runs alone
    AVAILABLE = False


def byte_class(chars: bytes) -> bytes:
    """A regex character class of exactly these bytes, every one escaped (no range can slip in)."""
    return b"[" + b"".join(b"\\x%02x" % ch for ch in sorted(set(chars))) + b"]"


class BufferScanner:
    """One compiled pass over a buffer, answering which kinds (bit flags) of pattern occur in it."""

    def __init__(self, database: Any, bits: Sequence[int]) -> None:
        self._db = database
        self._bits = tuple(bits)
        self._local = threading.local()

    @classmethod
    def build(cls, patterns: Sequence[tuple[bytes, int]]) -> BufferScanner | None:
        """Compile ``(regex, bit)`` pairs; None where Hyperscan is not installed."""
        if not AVAILABLE:
            return None
        database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        database.compile(
            expressions=[p for p, _ in patterns],
            ids=list(range(len(patterns))),
            flags=[hyperscan.HS_FLAG_SINGLEMATCH] * len(patterns),  # each pattern reports once: a bit is a bit
        )
        return cls(database, [bit for _, bit in patterns])

    def _scratch(self) -> Any:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self._db)
        return scratch

    def kinds(self, data: bytes, *, first: bool) -> int:
        """The bits of the patterns found in ``data``; with ``first``, any one found bit (or 0) and the
        scan stops at the first match."""
        found = 0
        bits = self._bits

        def on_match(pattern: int, start: int, end: int, flags: int, context: object) -> bool:
            nonlocal found
            found |= bits[pattern]
            return first  # True stops the scan

        with contextlib.suppress(hyperscan.ScanTerminated):
            self._db.scan(data, match_event_handler=on_match, scratch=self._scratch())
        return found

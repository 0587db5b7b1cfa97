"""Masking a byte stream (terminal output, followed logs): values found even when split across reads.

Theory of operation. ``feed(data)`` returns what may be sent now, masked; ``flush()`` returns the rest (call
it at the end of the stream, and when the stream has been quiet for a moment so a prompt or an echoed
keystroke is not held back). A value a detector would find may arrive in pieces ("4111 1111" then
" 1111 1111"), so the masker holds back the *open tail* of what it has: the trailing run of characters a
value can be made of (letters, digits and the separators cards, keys, e-mails and tokens use), and an
unterminated ``-----BEGIN ... PRIVATE KEY`` block. Text ends a run at any other character (a newline, a
tab, a bracket ...), so line-oriented output passes a line at a time. The hold is bounded: at most
``hold`` characters of a run (then its beginning is released) and ``pem_limit`` characters of a key block
(then the detector's own rule for an unterminated block masks the rest). The masker also remembers the
last ``context`` characters it released, so a value that straddles a forced release (a flush, the bound)
is still found and its unsent part masked; the part already sent cannot be recalled (docs/policy.md).

Bytes that are not UTF-8 pass through unchanged (surrogate escapes), and a multi-byte character split
across reads is held until it is whole. Fail closed: if masking itself fails, what was pending is replaced
by a notice, never sent unmasked.
"""

from __future__ import annotations

import logging
import string

from shared.masking.detectors import Match
from shared.masking.text import TextMasker

log = logging.getLogger(__name__)

_SURROGATE = "surrogateescape"
# What a detectable value (and the context of an AWS secret key) can be made of.
VALUE_CHARS = frozenset(string.ascii_letters + string.digits + " _.+/=@%-:'\"\\>~")
_PEM_BEGIN = "-----BEGIN"
_PEM_END = "-----END"
WITHHELD = b"[airlock: output withheld: it could not be masked]"


class StreamMasker:
    """One direction of one stream; not thread-safe (one event loop feeds it)."""

    def __init__(self, masker: TextMasker, *, hold: int = 1024, context: int = 256, pem_limit: int = 16384) -> None:
        self.masker = masker
        self.hold = hold
        self.context = context
        self.pem_limit = pem_limit
        self._pending = b""
        self._sent = ""  # the last characters released, as they were before masking
        self.withheld = 0  # times masking failed and pending output was replaced

    @property
    def pending(self) -> int:
        """Bytes held back, waiting for more of a value or for ``flush``."""
        return len(self._pending)

    def feed(self, data: bytes) -> bytes:
        """What of everything fed so far may be sent now, masked."""
        if not data:
            return b""
        self._pending += data
        return self._release(final=False)

    def flush(self) -> bytes:
        """Everything still held, masked (end of stream, or a pause in it)."""
        if not self._pending:
            return b""
        return self._release(final=True)

    def _release(self, *, final: bool) -> bytes:
        try:
            return self._cut(final)
        except Exception:  # a masking bug must not let output through unmasked
            log.exception("stream masking failed; withholding %d bytes", len(self._pending))
            self._pending = b""
            self._sent = ""
            self.withheld += 1
            return WITHHELD

    def _cut(self, final: bool) -> bytes:
        whole, partial = (self._pending, b"") if final else _split_utf8(self._pending)
        text = whole.decode("utf-8", _SURROGATE)
        offset = len(self._sent)
        window = self._sent + text
        matches = self.masker.matches(window) if self.masker.enabled else []
        cut = len(window) if final else self._open_tail(window, offset, matches)
        applied = [_clip(m, cut) for m in matches if m.start < cut and m.end > offset]
        masked = self.masker.replace(window[:cut], applied, start=offset) if applied else window[:cut]
        released = masked[offset:] if applied else text[: cut - offset]
        self._sent = window[max(0, cut - self.context) : cut]
        self._pending = window[cut:].encode("utf-8", _SURROGATE) + partial
        return released.encode("utf-8", _SURROGATE)

    def _open_tail(self, window: str, offset: int, matches: list[Match]) -> int:
        """Where the held-back tail begins (never before ``offset``: the sent part is gone)."""
        end = len(window)
        start = end
        floor = max(offset, end - self.hold)
        while start > floor and window[start - 1] in VALUE_CHARS:
            start -= 1
        limit = self.hold
        begin = window.rfind(_PEM_BEGIN, offset)
        if begin >= 0 and window.find(_PEM_END, begin) < 0 and end - begin <= self.pem_limit:
            start, limit = min(start, begin), self.pem_limit
        for m in matches:  # a value that reaches the end may still grow; one that crosses the cut is held whole
            if m.start >= offset and (m.end >= end or m.start < start < m.end):
                start = min(start, m.start)
        # Bounded: past the limit the beginning goes out (masked as far as it is a value already).
        return max(start, end - limit, offset)


def _clip(m: Match, cut: int) -> Match:
    return m if m.end <= cut else Match(m.detector, m.start, cut)


def _split_utf8(data: bytes) -> tuple[bytes, bytes]:
    """(complete part, trailing bytes of a multi-byte character that is not complete yet)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return data, b""
        if byte >= 0xC0:  # a lead byte: how long is its sequence?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return (data[:-back], data[-back:]) if back < need else (data, b"")
    return data, b""

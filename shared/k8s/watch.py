"""A JSON watch stream cut into its events, sans-I/O, so each can be masked before it is sent.

The API server writes each watch event as one JSON object followed by a newline (``json.Encoder``), and
JSON escapes newlines inside strings, so events end at newlines. The framer still copes with an event
spread over several lines (a pretty-printing server): at each newline it tries to read one JSON value from
what it holds, and waits for more when that value is not complete yet. A stream that is not JSON, or an
event larger than ``limit`` bytes, is a ``WatchStreamError``: the caller ends the stream (fail closed),
it never passes such bytes on.
"""

from __future__ import annotations

import json
from typing import Any


class WatchStreamError(ValueError):
    """The stream cannot be read as JSON watch events."""


class WatchFramer:
    def __init__(self, limit: int = 16 << 20) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer already known to hold no complete event

    def feed(self, data: bytes) -> list[Any]:
        """The events ``data`` completes, in order."""
        self._buffer += data
        events: list[Any] = []
        while True:
            newline = self._buffer.find(b"\n", self._scanned)
            if newline < 0:
                self._scanned = len(self._buffer)
                break
            candidate = bytes(self._buffer[: newline + 1])
            if not candidate.strip():
                del self._buffer[: newline + 1]
                self._scanned = 0
                continue
            try:
                events.append(json.loads(candidate))  # re-written after masking: repeated keys cannot pass
            except ValueError as e:
                if not _incomplete(candidate, e):
                    raise WatchStreamError(f"the watch stream is not JSON: {e}") from e
                self._scanned = newline + 1
                continue
            del self._buffer[: newline + 1]
            self._scanned = 0
        if len(self._buffer) > self.limit:
            raise WatchStreamError(f"a watch event is larger than {self.limit} bytes")
        return events

    def finish(self) -> list[Any]:
        """At the end of the stream: a last event without its newline, if any."""
        rest = bytes(self._buffer).strip()
        self._buffer.clear()
        self._scanned = 0
        if not rest:
            return []
        try:
            return [json.loads(rest)]
        except ValueError as e:
            raise WatchStreamError(f"the watch stream ended inside an event: {e}") from e


def _incomplete(text: bytes, error: ValueError) -> bool:
    """Whether JSON parsing failed only because the value goes on after ``text``."""
    if not isinstance(error, json.JSONDecodeError):
        return False
    # JSON strings cannot hold a raw newline, so only an error at the very end means "more to come".
    return error.pos >= len(text.decode("utf-8", "replace").rstrip())

"""How an HTTP API session is laid out in a recording (docs/recording-format.md, "HTTP exchanges").

A session's requests may overlap (kubectl runs several at once; a watch stays open while others come and
go), so every wire event of one names its *exchange*: a number, 1, 2, 3 ... in the order the requests
arrived. Payloads (all integers big-endian):

- ``HTTP_HEAD`` (kind 8): ``u32 exchange`` + the head as HTTP/1.1 text: the request line and headers as
  the agent sent them (direction 0; ``Authorization`` redacted), or the status line and headers sent back
  (direction 1);
- ``HTTP_BODY`` (kind 9): ``u32 exchange`` + a piece of the body, masked (a request body read from
  protobuf is recorded as the JSON it decoded to; one Airlock could not read only as its size and digest);
- ``STREAM`` (kind 10): ``u32 exchange`` + ``u8 channel`` + a piece of an upgraded stream (exec, attach,
  port-forward), channels numbered as Kubernetes' remote-command protocol numbers them: 0 stdin, 1 stdout,
  2 stderr, 3 error, 4 resize (SPDY streams are mapped to the same numbers).

Decisions name the exchange too: ``REQUEST`` (kind 40) before a request is forwarded or refused, with its
request-info and verdict; ``EXCHANGE_END`` (kind 41) when it is over (status, bytes, duration, and why a
stream ended).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote_plus, unquote_plus

from shared.recording.format import EventKind

_EXCHANGE = struct.Struct("!I")
_STREAM = struct.Struct("!IB")
REDACTED = "[redacted]"
# Headers whose values never reach a recording.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-remote-extra"})
STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
STREAM_CHANNELS = {"stdin": STDIN, "stdout": STDOUT, "stderr": STDERR, "error": ERROR, "resize": RESIZE}


class RecordedPayloadError(ValueError):
    """A payload too short for its kind."""


@dataclass(frozen=True, slots=True)
class ExchangePiece:
    """A decoded HTTP_HEAD / HTTP_BODY / STREAM payload (``channel`` only for STREAM)."""

    exchange: int
    data: bytes
    channel: int | None = None


def head_payload(exchange: int, head: str) -> bytes:
    return _EXCHANGE.pack(exchange) + head.encode("utf-8", "surrogateescape")


def body_payload(exchange: int, data: bytes) -> bytes:
    return _EXCHANGE.pack(exchange) + data


def stream_payload(exchange: int, channel: int, data: bytes) -> bytes:
    return _STREAM.pack(exchange, channel) + data


def parse_piece(kind: int, payload: bytes) -> ExchangePiece:
    """The exchange (and channel) and data of an HTTP_HEAD, HTTP_BODY or STREAM payload."""
    if kind == EventKind.STREAM:
        if len(payload) < _STREAM.size:
            raise RecordedPayloadError("STREAM payload shorter than its header")
        exchange, channel = _STREAM.unpack_from(payload)
        return ExchangePiece(exchange, payload[_STREAM.size :], channel)
    if len(payload) < _EXCHANGE.size:
        raise RecordedPayloadError("HTTP payload shorter than its exchange number")
    return ExchangePiece(_EXCHANGE.unpack_from(payload)[0], payload[_EXCHANGE.size :])


def request_head(method: str, target: str, headers: Iterable[tuple[str, str]]) -> str:
    """The request's head as recorded: request line, then each header (secrets redacted)."""
    lines = [f"{method} {target} HTTP/1.1"]
    lines += [f"{name}: {_value(name, value)}" for name, value in headers]
    return "\r\n".join(lines) + "\r\n\r\n"


def response_head(status: int, reason: str, headers: Iterable[tuple[str, str]]) -> str:
    lines = [f"HTTP/1.1 {status} {reason}".rstrip()]
    lines += [f"{name}: {_value(name, value)}" for name, value in headers]
    return "\r\n".join(lines) + "\r\n\r\n"


def _value(name: str, value: str) -> str:
    if name.lower() not in SECRET_HEADERS:
        return value
    scheme, _, rest = value.partition(" ")
    return f"{scheme} {REDACTED}" if rest else REDACTED


def masked_target(target: str, mask: Callable[[str], str]) -> str:
    """A request target as it may be recorded: query values (an exec command line, a label selector) with
    what the detectors find masked. Unchanged, byte for byte, when they find nothing."""
    path, question, query = target.partition("?")
    if not query:
        return target
    pairs = []
    changed = False
    for pair in query.split("&"):
        key, equals, value = pair.partition("=")
        plain = unquote_plus(value)
        masked = mask(plain)
        if masked != plain:
            changed = True
            value = quote_plus(masked, safe="*")
        pairs.append(key + equals + value)
    return path + question + "&".join(pairs) if changed else target


def parse_head(data: bytes) -> tuple[str, list[tuple[str, str]]]:
    """(first line, headers) of a recorded head."""
    text = data.decode("utf-8", "replace")
    lines = [line for line in text.split("\r\n") if line]
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return (lines[0] if lines else ""), headers

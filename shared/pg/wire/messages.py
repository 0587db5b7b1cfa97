"""Parsers and builders, one small function per PostgreSQL message, layout in a one-line comment.

Builders return whole framed messages (type byte + length + body). Parsers take the message body (the
bytes after the length word) and raise ProtocolViolation on malformed input, never IndexError.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .constants import (
    CANCEL_REQUEST_CODE,
    GSSENC_REQUEST_CODE,
    MAX_CANCEL_KEY,
    SSL_REQUEST_CODE,
)
from .errors import ProtocolViolation

_I32 = struct.Struct("!i")
_I16 = struct.Struct("!h")
_FIELD = struct.Struct("!IhIhih")


def frame(mtype: bytes, body: bytes) -> bytes:
    """Type byte + int32 length (self-inclusive) + body."""
    return mtype + _I32.pack(len(body) + 4) + body


# Protocol strings are bytes in the session's client_encoding, which need not be UTF-8 (LATIN9, SJIS, ...).
# They are read as UTF-8 with surrogateescape, so bytes that are not UTF-8 survive as lone surrogates and a
# string read here and written back is byte-identical. Whoever must understand a string's characters (the
# SQL judge, masking) decodes the bytes with the session's encoding instead (``shared/pg/sql/lexing.py``).
WIRE_ERRORS = "surrogateescape"


def _cstr(value: str) -> bytes:
    raw = value.encode("utf-8", WIRE_ERRORS)
    if b"\0" in raw:
        raise ValueError("NUL byte in protocol string")
    return raw + b"\0"


def _cstr_end(body: bytes | memoryview, pos: int) -> int:
    end = bytes(body).find(b"\0", pos) if isinstance(body, memoryview) else body.find(b"\0", pos)
    if end < 0:
        raise ProtocolViolation("unterminated string in message")
    return end


def read_cstr(body: bytes | memoryview, pos: int) -> tuple[str, int]:
    """Read a NUL-terminated string at pos; returns (string, position after the NUL). Bytes that are not
    UTF-8 are kept as surrogates (see ``WIRE_ERRORS``)."""
    end = _cstr_end(body, pos)
    return bytes(body[pos:end]).decode("utf-8", WIRE_ERRORS), end + 1


def read_cstr_bytes(body: bytes, pos: int) -> tuple[bytes, int]:
    """Read a NUL-terminated string at pos as the bytes it is."""
    end = _cstr_end(body, pos)
    return body[pos:end], end + 1


# ---------------------------------------------------------------- startup phase (no type byte)


@dataclass(frozen=True, slots=True)
class StartupMessage:
    protocol: int
    params: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SSLRequest:
    pass


@dataclass(frozen=True, slots=True)
class GSSENCRequest:
    pass


@dataclass(frozen=True, slots=True)
class CancelRequest:
    pid: int
    key: bytes


StartupPacket = StartupMessage | SSLRequest | GSSENCRequest | CancelRequest


def parse_startup_packet(body: bytes) -> StartupPacket:
    """Body of an untyped startup packet (after the int32 length)."""
    if len(body) < 4:
        raise ProtocolViolation("invalid length of startup packet")
    (code,) = _I32.unpack_from(body, 0)
    if code == SSL_REQUEST_CODE:
        return SSLRequest()
    if code == GSSENC_REQUEST_CODE:
        return GSSENCRequest()
    if code == CANCEL_REQUEST_CODE:
        # CancelRequest: int32 code, int32 pid, byte[n] secret key (4 bytes in 3.0, up to 256 in 3.2)
        if not 8 + 4 <= len(body) <= 8 + MAX_CANCEL_KEY:
            raise ProtocolViolation("invalid length of cancel request")
        (pid,) = _I32.unpack_from(body, 4)
        return CancelRequest(pid, bytes(body[8:]))
    if code >> 16 != 3:
        raise ProtocolViolation(
            f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}: server supports 3.0 to 3.2",
            sqlstate="0A000",
        )
    # StartupMessage: int32 version, (cstring name, cstring value)*, NUL
    params: dict[str, str] = {}
    pos = 4
    while True:
        if pos >= len(body):
            raise ProtocolViolation("startup packet has no terminator")
        if body[pos] == 0:
            if pos != len(body) - 1:
                raise ProtocolViolation("invalid startup packet layout: expected terminator as last byte")
            break
        name, pos = read_cstr(body, pos)
        value, pos = read_cstr(body, pos)
        params[name] = value
    return StartupMessage(code, params)


def build_startup_message(protocol: int, params: Mapping[str, str]) -> bytes:
    # StartupMessage: int32 len, int32 version, (cstring name, cstring value)*, NUL
    body = _I32.pack(protocol) + b"".join(_cstr(k) + _cstr(v) for k, v in params.items()) + b"\0"
    return _I32.pack(len(body) + 4) + body


def build_ssl_request() -> bytes:
    # SSLRequest: int32 8, int32 80877103
    return _I32.pack(8) + _I32.pack(SSL_REQUEST_CODE)


def build_cancel_request(pid: int, key: bytes) -> bytes:
    # CancelRequest: int32 len, int32 80877102, int32 pid, byte[n] key
    return _I32.pack(12 + len(key)) + _I32.pack(CANCEL_REQUEST_CODE) + _I32.pack(pid) + key


# ---------------------------------------------------------------- authentication


def parse_authentication(body: bytes) -> tuple[int, bytes]:
    # Authentication*: int32 code, byte[] data
    if len(body) < 4:
        raise ProtocolViolation("authentication message too short")
    return _I32.unpack_from(body, 0)[0], bytes(body[4:])


def build_authentication(code: int, data: bytes = b"") -> bytes:
    return frame(b"R", _I32.pack(code) + data)


def parse_sasl_mechanisms(data: bytes) -> list[str]:
    # AuthenticationSASL data: (cstring mechanism)*, NUL
    mechanisms: list[str] = []
    pos = 0
    while pos < len(data) and data[pos] != 0:
        name, pos = read_cstr(data, pos)
        mechanisms.append(name)
    return mechanisms


def parse_password_message(body: bytes) -> str:
    # PasswordMessage: cstring password
    value, end = read_cstr(body, 0)
    if end != len(body):
        raise ProtocolViolation("invalid password packet size")
    return value


def build_password_message(password: str) -> bytes:
    return frame(b"p", _cstr(password))


def build_sasl_initial_response(mechanism: str, data: bytes) -> bytes:
    # SASLInitialResponse: cstring mechanism, int32 len (-1 = none), byte[n] data
    return frame(b"p", _cstr(mechanism) + _I32.pack(len(data)) + data)


def build_sasl_response(data: bytes) -> bytes:
    # SASLResponse: byte[n] data
    return frame(b"p", data)


# ---------------------------------------------------------------- status and keys


def parse_backend_key_data(body: bytes) -> tuple[int, bytes]:
    # BackendKeyData: int32 pid, byte[n] secret key (4 bytes in 3.0, up to 256 in 3.2)
    if not 8 <= len(body) <= 4 + MAX_CANCEL_KEY:
        raise ProtocolViolation("invalid BackendKeyData")
    return _I32.unpack_from(body, 0)[0], bytes(body[4:])


def build_backend_key_data(pid: int, key: bytes) -> bytes:
    return frame(b"K", _I32.pack(pid) + key)


def parse_parameter_status(body: bytes) -> tuple[str, str]:
    # ParameterStatus: cstring name, cstring value
    name, pos = read_cstr(body, 0)
    value, _ = read_cstr(body, pos)
    return name, value


def build_parameter_status(name: str, value: str) -> bytes:
    return frame(b"S", _cstr(name) + _cstr(value))


def build_ready_for_query(status: bytes) -> bytes:
    # ReadyForQuery: byte1 status ('I' idle, 'T' in transaction, 'E' failed transaction)
    return frame(b"Z", status)


def parse_negotiate_protocol_version(body: bytes) -> tuple[int, list[str]]:
    # NegotiateProtocolVersion: int32 newest minor supported, int32 n, (cstring option)*n
    if len(body) < 8:
        raise ProtocolViolation("invalid NegotiateProtocolVersion")
    minor, count = struct.unpack_from("!ii", body, 0)
    options: list[str] = []
    pos = 8
    for _ in range(max(count, 0)):
        name, pos = read_cstr(body, pos)
        options.append(name)
    return minor, options


# ---------------------------------------------------------------- errors and notices

# Field codes of ErrorResponse / NoticeResponse.
FIELD_SEVERITY = "S"
FIELD_SEVERITY_NONLOCALIZED = "V"
FIELD_CODE = "C"
FIELD_MESSAGE = "M"
FIELD_DETAIL = "D"
FIELD_HINT = "H"


def parse_error_fields(body: bytes) -> dict[str, str]:
    # ErrorResponse / NoticeResponse: (byte1 code, cstring value)*, NUL
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(body) and body[pos] != 0:
        code = chr(body[pos])
        value, pos = read_cstr(body, pos + 1)
        fields[code] = value
    return fields


def build_error_fields(mtype: bytes, fields: Mapping[str, str]) -> bytes:
    return frame(mtype, b"".join(k.encode() + _cstr(v) for k, v in fields.items()) + b"\0")


def build_error(
    severity: str, sqlstate: str, message: str, *, detail: str | None = None, hint: str | None = None
) -> bytes:
    """ErrorResponse as a server would send it (S, V, C, M, optional D and H)."""
    fields = {FIELD_SEVERITY: severity, FIELD_SEVERITY_NONLOCALIZED: severity, FIELD_CODE: sqlstate,
              FIELD_MESSAGE: message}
    if detail:
        fields[FIELD_DETAIL] = detail
    if hint:
        fields[FIELD_HINT] = hint
    return build_error_fields(b"E", fields)


def build_notice(message: str, *, severity: str = "NOTICE", sqlstate: str = "00000") -> bytes:
    return build_error_fields(
        b"N", {FIELD_SEVERITY: severity, FIELD_SEVERITY_NONLOCALIZED: severity, FIELD_CODE: sqlstate,
               FIELD_MESSAGE: message}
    )


# ---------------------------------------------------------------- queries and results


def parse_query(body: bytes) -> str:
    # Query: cstring query
    text, end = read_cstr(body, 0)
    if end != len(body):
        raise ProtocolViolation("invalid Query message: trailing bytes")
    return text


def parse_query_bytes(body: bytes) -> bytes:
    """A Query's text as the bytes the client sent (in its client_encoding)."""
    raw, end = read_cstr_bytes(body, 0)
    if end != len(body):
        raise ProtocolViolation("invalid Query message: trailing bytes")
    return raw


def build_query(sql: str) -> bytes:
    return frame(b"Q", _cstr(sql))


@dataclass(frozen=True, slots=True)
class Parse:
    name: str
    query_bytes: bytes  # as sent, in the session's client_encoding
    param_types: tuple[int, ...]

    @property
    def query(self) -> str:
        return self.query_bytes.decode("utf-8", WIRE_ERRORS)


def parse_parse(body: bytes) -> Parse:
    # Parse: cstring name, cstring query, int16 n, int32 oid * n
    name, pos = read_cstr(body, 0)
    query, pos = read_cstr_bytes(body, pos)
    if pos + 2 > len(body):
        raise ProtocolViolation("invalid Parse message")
    (count,) = _I16.unpack_from(body, pos)
    pos += 2
    if count < 0 or pos + 4 * count != len(body):
        raise ProtocolViolation("invalid Parse message: parameter type count")
    types = struct.unpack_from(f"!{count}I", body, pos)
    return Parse(name, query, types)


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    table_oid: int
    column: int
    type_oid: int
    type_size: int
    type_modifier: int
    format: int


def parse_row_description(body: bytes) -> list[Field]:
    # RowDescription: int16 n, (cstring name, int32 table, int16 column, int32 type, int16 size,
    #                 int32 modifier, int16 format) * n
    if len(body) < 2:
        raise ProtocolViolation("invalid RowDescription")
    (count,) = _I16.unpack_from(body, 0)
    pos = 2
    fields: list[Field] = []
    for _ in range(count):
        name, pos = read_cstr(body, pos)
        if pos + _FIELD.size > len(body):
            raise ProtocolViolation("invalid RowDescription")
        fields.append(Field(name, *_FIELD.unpack_from(body, pos)))
        pos += _FIELD.size
    return fields


def build_row_description(fields: Iterable[Field]) -> bytes:
    items = list(fields)
    return frame(
        b"T",
        _I16.pack(len(items))
        + b"".join(
            _cstr(f.name) + _FIELD.pack(f.table_oid, f.column, f.type_oid, f.type_size, f.type_modifier, f.format)
            for f in items
        ),
    )


def parse_data_row(body: bytes) -> list[bytes | None]:
    # DataRow: int16 n, (int32 len (-1 = NULL), byte[len] value) * n
    if len(body) < 2:
        raise ProtocolViolation("invalid DataRow")
    (count,) = _I16.unpack_from(body, 0)
    pos = 2
    values: list[bytes | None] = []
    for _ in range(count):
        if pos + 4 > len(body):
            raise ProtocolViolation("invalid DataRow")
        (n,) = _I32.unpack_from(body, pos)
        pos += 4
        if n == -1:
            values.append(None)
            continue
        if n < 0 or pos + n > len(body):
            raise ProtocolViolation("invalid DataRow value length")
        values.append(bytes(body[pos : pos + n]))
        pos += n
    if pos != len(body):
        raise ProtocolViolation("invalid DataRow: trailing bytes")
    return values


def build_data_row(values: Iterable[bytes | None]) -> bytes:
    items = list(values)
    parts = [_I16.pack(len(items))]
    for v in items:
        if v is None:
            parts.append(_I32.pack(-1))
        else:
            parts.append(_I32.pack(len(v)))
            parts.append(v)
    return frame(b"D", b"".join(parts))


def parse_command_complete(body: bytes) -> str:
    # CommandComplete: cstring tag
    return read_cstr(body, 0)[0]


TERMINATE = frame(b"X", b"")
SYNC = frame(b"S", b"")


# ---------------------------------------------------------------- extended protocol (frontend)


@dataclass(frozen=True, slots=True)
class Bind:
    portal: str
    statement: str
    result_formats: tuple[int, ...]


def parse_bind(body: bytes) -> Bind:
    # Bind: cstring portal, cstring statement, int16 n, int16 fmt*n, int16 m, (int32 len, byte[len])*m,
    #       int16 r, int16 result_fmt*r
    portal, pos = read_cstr(body, 0)
    statement, pos = read_cstr(body, pos)
    try:
        (n,) = _I16.unpack_from(body, pos)
        pos += 2 + 2 * n
        (count,) = _I16.unpack_from(body, pos)
        pos += 2
        for _ in range(count):
            (length,) = _I32.unpack_from(body, pos)
            pos += 4 + max(length, 0)
        (r,) = _I16.unpack_from(body, pos)
        formats = struct.unpack_from(f"!{r}h", body, pos + 2)
    except struct.error as e:
        raise ProtocolViolation("invalid Bind message") from e
    if n < 0 or count < 0 or r < 0 or pos + 2 + 2 * r != len(body):
        raise ProtocolViolation("invalid Bind message")
    return Bind(portal, statement, formats)


def parse_describe_or_close(body: bytes) -> tuple[str, str]:
    # Describe / Close: byte1 'S' (statement) or 'P' (portal), cstring name
    if not body or body[:1] not in (b"S", b"P"):
        raise ProtocolViolation("invalid Describe/Close target")
    name, end = read_cstr(body, 1)
    if end != len(body):
        raise ProtocolViolation("invalid Describe/Close message")
    return chr(body[0]), name


def parse_execute(body: bytes) -> tuple[str, int]:
    # Execute: cstring portal, int32 max rows (0 = all)
    portal, pos = read_cstr(body, 0)
    if pos + 4 != len(body):
        raise ProtocolViolation("invalid Execute message")
    return portal, _I32.unpack_from(body, pos)[0]


def build_parse(name: str, query: str, param_types: Iterable[int] = ()) -> bytes:
    types = tuple(param_types)
    return frame(b"P", _cstr(name) + _cstr(query) + _I16.pack(len(types)) + struct.pack(f"!{len(types)}I", *types))


def build_describe(kind: str, name: str) -> bytes:
    return frame(b"D", kind.encode() + _cstr(name))


def parse_copy_response(body: bytes) -> tuple[int, tuple[int, ...]]:
    # CopyInResponse / CopyOutResponse / CopyBothResponse: int8 overall format, int16 n, int16 fmt*n
    if len(body) < 3:
        raise ProtocolViolation("invalid Copy response")
    (n,) = _I16.unpack_from(body, 1)
    if n < 0 or 3 + 2 * n != len(body):
        raise ProtocolViolation("invalid Copy response")
    return body[0], struct.unpack_from(f"!{n}h", body, 3)

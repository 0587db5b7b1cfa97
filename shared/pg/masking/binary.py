"""Binary-format values the masker must see into: int8, numeric, jsonb and one-level arrays.

Layouts follow the server's send/recv functions; every decoder raises ``ValueError`` on malformed input,
which the masker turns into fail-closed replacement.
"""

from __future__ import annotations

import struct

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_I64 = struct.Struct("!q")
_NUMERIC_HEAD = struct.Struct("!hhHH")  # ndigits, weight, sign, dscale
_NUMERIC_POS, _NUMERIC_NEG = 0x0000, 0x4000
_ARRAY_HEAD = struct.Struct("!iiI")  # ndim, has-nulls flag, element type oid

JSONB_VERSION = b"\x01"

# Type oids (pg_type) the masker distinguishes.
INT2, INT4, INT8, FLOAT4, FLOAT8, NUMERIC = 21, 23, 20, 700, 701, 1700
TEXT, VARCHAR, BPCHAR, NAME, UNKNOWN, XML, CHAR = 25, 1043, 1042, 19, 705, 142, 18
JSON, JSONB = 114, 3802
BYTEA = 17
TEXT_LIKE = frozenset({TEXT, VARCHAR, BPCHAR, NAME, UNKNOWN, XML})
NUMBERS = frozenset({INT2, INT4, INT8, FLOAT4, FLOAT8, NUMERIC})
ARRAY_ELEMENT: dict[int, int] = {
    1009: TEXT, 1015: VARCHAR, 1014: BPCHAR, 1003: NAME, 143: XML, 199: JSON, 3807: JSONB,
    1016: INT8, 1231: NUMERIC, 1001: BYTEA, 1005: INT2, 1007: INT4, 1021: FLOAT4, 1022: FLOAT8,
}
# Text-format values of these types cannot hold anything a detector finds (no 13-digit runs, no '@').
NEVER_SENSITIVE_TEXT = frozenset({
    16, INT2, INT4, FLOAT4, FLOAT8, 26, 1082, 1083, 1114, 1184, 1186, 1266, 2950, 869, 650, 829, 774,
    1560, 1562, 790, 3220, 1005, 1007, 1000, 1182, 1115, 1185, 2951,
})


def decode_int(value: bytes) -> int:
    if len(value) == 8:
        return int(_I64.unpack(value)[0])
    if len(value) == 4:
        return int(_I32.unpack(value)[0])
    if len(value) == 2:
        return int(_I16.unpack(value)[0])
    raise ValueError("integer of unexpected width")


def encode_int(number: int, width: int) -> bytes:
    limit = 1 << (width * 8 - 1)
    number = max(-limit, min(limit - 1, number))
    return {2: _I16, 4: _I32, 8: _I64}[width].pack(number)


def decode_numeric(value: bytes) -> tuple[str | None, int]:
    """(decimal integer text, dscale); text is None for NaN/infinity and for values with a fraction."""
    if len(value) < 8:
        raise ValueError("numeric too short")
    ndigits, weight, sign, dscale = _NUMERIC_HEAD.unpack_from(value)
    if ndigits < 0 or len(value) != 8 + 2 * ndigits:
        raise ValueError("numeric length mismatch")
    if sign not in (_NUMERIC_POS, _NUMERIC_NEG):
        return None, dscale
    digits = struct.unpack_from(f"!{ndigits}h", value, 8)
    if any(not 0 <= d < 10000 for d in digits):
        raise ValueError("numeric digit out of range")
    exponent = weight - (ndigits - 1)
    if exponent < 0 and any(digits[ndigits + exponent :]):
        return None, dscale  # a fraction: not an identifier-like number
    n = 0
    for d in digits:
        n = n * 10000 + d
    n = n * 10000**exponent if exponent >= 0 else n // 10000 ** (-exponent)
    return ("-" if sign == _NUMERIC_NEG and n else "") + str(n), dscale


def encode_numeric(number: int, dscale: int = 0) -> bytes:
    sign = _NUMERIC_NEG if number < 0 else _NUMERIC_POS
    n = abs(number)
    groups: list[int] = []
    while n:
        n, d = divmod(n, 10000)
        groups.append(d)
    groups.reverse()
    weight = len(groups) - 1 if groups else 0
    while groups and groups[-1] == 0:  # the server strips trailing zero groups
        groups.pop()
    return _NUMERIC_HEAD.pack(len(groups), weight, sign, dscale) + struct.pack(f"!{len(groups)}h", *groups)


def decode_array(value: bytes) -> tuple[bytes, int, list[bytes | None]]:
    """(header to re-emit unchanged, element type oid, elements) of a binary array."""
    if len(value) < _ARRAY_HEAD.size:
        raise ValueError("array too short")
    ndim, _flags, elem = _ARRAY_HEAD.unpack_from(value)
    if not 0 <= ndim <= 6:
        raise ValueError("array dimensions out of range")
    pos = _ARRAY_HEAD.size + 8 * ndim
    if pos > len(value):
        raise ValueError("array header truncated")
    count = 1 if ndim else 0
    for i in range(ndim):
        size = _I32.unpack_from(value, _ARRAY_HEAD.size + 8 * i)[0]
        if size < 0:
            raise ValueError("negative array dimension")
        count *= size
    header = value[:pos]
    elements: list[bytes | None] = []
    for _ in range(count):
        if pos + 4 > len(value):
            raise ValueError("array element truncated")
        (n,) = _I32.unpack_from(value, pos)
        pos += 4
        if n == -1:
            elements.append(None)
            continue
        if n < 0 or pos + n > len(value):
            raise ValueError("array element length")
        elements.append(value[pos : pos + n])
        pos += n
    if pos != len(value):
        raise ValueError("array trailing bytes")
    return header, elem, elements


def encode_array(header: bytes, elements: list[bytes | None]) -> bytes:
    if None in elements:  # a fail-closed NULL element: the has-nulls flag must say so
        header = header[:4] + _I32.pack(1) + header[8:]
    parts = [header]
    for e in elements:
        parts.append(_I32.pack(-1) if e is None else _I32.pack(len(e)) + e)
    return b"".join(parts)

"""Read SQL text exactly as the server will: the session's lexing settings, from the server's own reports.

Theory of operation. The classifier (pglast) always reads UTF-8 text with ``standard_conforming_strings``
on. The server reads the bytes the client sent: it first converts them from the session's
``client_encoding`` and then lexes them under its own ``standard_conforming_strings``. Both settings can
change at any time (a startup parameter, ``SET``, ``set_config()``, ``RESET``, a role's or database's
default, a function) and the server reports each change in a ParameterStatus message. ``LexingState``
keeps the last reported values; ``decode`` turns a statement's bytes into the very characters the
server's lexer will see, or says why it cannot:

- Text that is pure ASCII without a backslash reads the same under every encoding PostgreSQL accepts from
  a client and under either ``standard_conforming_strings``: the fast path.
- A backslash while ``standard_conforming_strings`` is off: the server reads ``'a\\'`` as an escaped
  quote, pglast as a complete string. Such text is not judged (the policy's ``unknown`` action).
- Encodings in which every byte of a multi-byte character is >= 0x80 (UTF8, LATINn, WINnnnn, KOI8,
  EUC_*, ...) cannot hide an ASCII character inside another one: decoded with the matching codec, the text
  has the same token boundaries the server sees.
- The client-only encodings SJIS, SHIFT_JIS_2004, BIG5, GBK, UHC, JOHAB and GB18030 allow bytes such as
  0x5C (backslash) as the second byte of a character. Their text is split into characters with
  PostgreSQL's own character-length rules (``pg_*_mblen``), so a backslash that the server reads as part
  of a character is never read as a backslash here; each multi-byte character is then decoded, and one
  that does not decode (or decodes to ASCII) makes the text unjudgeable.

What the server has not reported yet cannot be known: ``Relay`` holds a statement whose reading depends
on the settings (``sensitive``) while a request that may change them is still in flight.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass

# PostgreSQL's encoding names (as ParameterStatus reports them) -> Python codec, for encodings in which no
# byte of a multi-byte character is ASCII. An encoding missing here (EUC_TW, MULE_INTERNAL) still has that
# property; its characters are decoded as Latin-1, which keeps every token boundary (only the spelling
# of a non-ASCII name differs).
_ASCII_SAFE: dict[str, str | None] = {
    "UTF8": "utf-8",
    "LATIN1": "latin-1", "LATIN2": "iso8859-2", "LATIN3": "iso8859-3", "LATIN4": "iso8859-4",
    "LATIN5": "iso8859-9", "LATIN6": "iso8859-10", "LATIN7": "iso8859-13", "LATIN8": "iso8859-14",
    "LATIN9": "iso8859-15", "LATIN10": "iso8859-16",
    "ISO_8859_5": "iso8859-5", "ISO_8859_6": "iso8859-6", "ISO_8859_7": "iso8859-7", "ISO_8859_8": "iso8859-8",
    "WIN866": "cp866", "WIN874": "cp874", "WIN1250": "cp1250", "WIN1251": "cp1251", "WIN1252": "cp1252",
    "WIN1253": "cp1253", "WIN1254": "cp1254", "WIN1255": "cp1255", "WIN1256": "cp1256", "WIN1257": "cp1257",
    "WIN1258": "cp1258", "KOI8R": "koi8-r", "KOI8U": "koi8-u",
    "EUC_JP": "euc_jp", "EUC_JIS_2004": "euc_jis_2004", "EUC_CN": "gb2312", "EUC_KR": "euc_kr",
    "EUC_TW": None, "MULE_INTERNAL": None,
}


def _mblen_high_two(raw: bytes, i: int) -> int:
    """BIG5, GBK, UHC: a byte with the high bit set starts a two-byte character."""
    return 2 if raw[i] >= 0x80 else 1


def _mblen_sjis(raw: bytes, i: int) -> int:
    """pg_sjis_mblen: 0xA1-0xDF is a one-byte (half-width katakana) character."""
    b = raw[i]
    if 0xA1 <= b <= 0xDF:
        return 1
    return 2 if b >= 0x80 else 1


def _mblen_johab(raw: bytes, i: int) -> int:
    """pg_johab_mblen is pg_euc_mblen: SS2 two bytes, SS3 three, any other high byte two."""
    b = raw[i]
    if b == 0x8E:
        return 2
    if b == 0x8F:
        return 3
    return 2 if b >= 0x80 else 1


def _mblen_gb18030(raw: bytes, i: int) -> int:
    """pg_gb18030_mblen: four bytes when the second byte is a digit, else two."""
    if raw[i] < 0x80:
        return 1
    return 4 if i + 1 < len(raw) and 0x30 <= raw[i + 1] <= 0x39 else 2


# Client-only encodings: (codec, PostgreSQL's character length rule).
_CLIENT_ONLY: dict[str, tuple[str, Callable[[bytes, int], int]]] = {
    "SJIS": ("cp932", _mblen_sjis),
    "SHIFT_JIS_2004": ("shift_jis_2004", _mblen_sjis),
    "BIG5": ("cp950", _mblen_high_two),
    "GBK": ("cp936", _mblen_high_two),
    "UHC": ("cp949", _mblen_high_two),
    "JOHAB": ("johab", _mblen_johab),
    "GB18030": ("gb18030", _mblen_gb18030),
}

LEXING_SETTINGS = frozenset({"client_encoding", "standard_conforming_strings"})


class Unjudgeable(ValueError):
    """The text cannot be read as the server will read it; the message says why (shown to the agent)."""


def sensitive(raw: bytes) -> bool:
    """Whether the server's reading of ``raw`` depends on the lexing settings (not pure ASCII, or a
    backslash)."""
    return not raw.isascii() or b"\\" in raw


def encoding_name(value: str) -> str:
    """PostgreSQL's canonical spelling of an encoding name as a client may write it (``utf-8`` -> UTF8)."""
    return value.strip().upper().replace("-", "").replace("_", "") if value else ""


_CANONICAL = {encoding_name(n): n for n in (*_ASCII_SAFE, *_CLIENT_ONLY)} | {
    "UNICODE": "UTF8", "WIN": "WIN1251", "ALT": "WIN866", "SHIFTJIS": "SJIS", "MSKANJI": "SJIS",
    "WIN932": "SJIS", "WIN936": "GBK", "WIN949": "UHC", "WIN950": "BIG5", "ISO88591": "LATIN1",
    "ISO885915": "LATIN9", "KOI8": "KOI8R", "TCVN": "WIN1258", "TCVN5712": "WIN1258", "VSCII": "WIN1258",
}


def canonical(value: str) -> str:
    """The name the server reports for ``value`` (``'latin9'`` -> LATIN9); unknown names are kept upper-case."""
    return _CANONICAL.get(encoding_name(value), value.strip().upper())


@dataclass(slots=True)
class LexingState:
    """The session's settings that change how the server lexes SQL, as the server last reported them."""

    client_encoding: str = "UTF8"
    standard_conforming_strings: bool = True
    server_encoding: str = "UTF8"

    def observe(self, name: str, value: str) -> bool:
        """A ParameterStatus report; True when it changed a setting that changes how SQL is read."""
        if name == "client_encoding":
            new = canonical(value)
            changed = new != self.client_encoding
            self.client_encoding = new
            return changed
        if name == "standard_conforming_strings":
            on = value.strip().lower() == "on"
            changed = on != self.standard_conforming_strings
            self.standard_conforming_strings = on
            return changed
        if name == "server_encoding":
            self.server_encoding = canonical(value)
        return False

    @property
    def python_codec(self) -> str:
        """The codec that decodes this session's text for display and masking (never raises with
        ``surrogateescape``)."""
        enc = self.client_encoding
        if enc in _CLIENT_ONLY:
            return _CLIENT_ONLY[enc][0]
        if enc == "SQL_ASCII":
            return "utf-8" if self.server_encoding == "UTF8" else "latin-1"
        return _ASCII_SAFE.get(enc) or "latin-1"

    def decode(self, raw: bytes) -> str:
        """The characters the server's lexer will see in ``raw``; raises ``Unjudgeable``."""
        if raw.isascii():
            if b"\\" in raw and not self.standard_conforming_strings:
                raise Unjudgeable(_SCS_OFF)
            return raw.decode("ascii")
        text = self._decode(raw)
        if "\\" in text and not self.standard_conforming_strings:
            raise Unjudgeable(_SCS_OFF)
        return text

    def _decode(self, raw: bytes) -> str:
        enc = self.client_encoding
        client_only = _CLIENT_ONLY.get(enc)
        if client_only is not None:
            return _split_and_decode(raw, *client_only, enc)
        if enc == "SQL_ASCII":
            # No conversion: the server only checks the bytes against its own encoding (none if SQL_ASCII,
            # where every byte >= 0x80 is a letter to the lexer).
            enc = self.server_encoding
            if enc == "SQL_ASCII":
                return raw.decode("latin-1")
        if enc not in _ASCII_SAFE:
            raise Unjudgeable(f"Airlock cannot read SQL in client_encoding {enc}; use UTF8")
        codec = _ASCII_SAFE[enc]
        try:
            return raw.decode(codec or "latin-1")
        except UnicodeDecodeError as e:
            if enc == "UTF8":
                raise Unjudgeable("the statement is not valid UTF8") from e
            return raw.decode("latin-1")  # an ASCII-safe encoding: the token boundaries are the same


_SCS_OFF = (
    "the statement contains a backslash while standard_conforming_strings is off, and Airlock judges SQL "
    "as the server reads it with standard_conforming_strings on; set it on (and write E'...' strings)"
)


def _split_and_decode(raw: bytes, codec: str, mblen: Callable[[bytes, int], int], enc: str) -> str:
    decoder = codecs.getdecoder(codec)
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        b = raw[i]
        if b < 0x80:
            out.append(chr(b))
            i += 1
            continue
        size = mblen(raw, i)
        piece = raw[i : i + size]
        try:
            char = decoder(piece)[0]
        except UnicodeDecodeError as e:
            raise Unjudgeable(f"the statement has a byte sequence that is not valid {enc}") from e
        if len(piece) < size or not char or char.isascii():
            raise Unjudgeable(f"the statement has a byte sequence that is not valid {enc}")
        out.append(char)
        i += size
    return "".join(out)

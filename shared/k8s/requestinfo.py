"""The API server's request-info: what a request does, read exactly as kube-apiserver reads it.

Follows k8s.io/apiserver's ``RequestInfoFactory.NewRequestInfo`` step by step, on the request target as Go's
``net/url`` decodes it (``decode_target``: the path percent-decoded, so ``a%2Fb`` is two segments; the query
split on ``&`` with pairs holding a ``;`` dropped, as ``URL.Query()`` drops them):

- fewer than three path segments, or a first segment other than ``api``/``apis``: a non-resource request,
  verb = the lower-cased method;
- ``/api/<version>/...`` and ``/apis/<group>/<version>/...`` (at least four segments for ``apis``) are
  resource requests; a first remaining segment ``watch`` or ``proxy`` is the verb (a special verb with
  nothing after it is an error, which the API server answers with 500), else the method gives it: POST
  create, GET and HEAD get, PUT update, PATCH patch, DELETE delete, any other method "";
- ``namespaces/<ns>/<rest>`` scopes ``<rest>`` to ``<ns>`` unless ``<rest>`` starts with a namespace
  subresource (``status``, ``finalize``); then ``resource/name/subresource/...`` (no subresource for
  ``proxy``);
- a ``get`` without a name is ``list``, or ``watch`` when the first ``watch`` parameter is present and
  neither ``false`` (any case) nor ``0`` (so ``watch=`` is a watch, as in the API server); a list or watch
  whose ``fieldSelector`` requires ``metadata.name=<n>`` (parsed as k8s.io/apimachinery's ``fields``
  package parses it: escapes, sorted terms, the first equality on ``metadata.name``) takes ``<n>`` as its
  name when it is a valid path segment name; a ``delete`` without a name is ``deletecollection``.

One difference, on purpose: the API server skips the name from a field selector when any list option fails
to decode (an invalid label selector, a limit that is not a number); Airlock checks the field selector and
the numbers but not label selector syntax, so a request the API server refuses as invalid anyway may carry
a name here. Nothing the server runs is judged differently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

API_PREFIXES = frozenset({"api", "apis"})
GROUPLESS_PREFIXES = frozenset({"api"})
SPECIAL_VERBS = frozenset({"proxy", "watch"})
SPECIAL_VERBS_NO_SUBRESOURCES = frozenset({"proxy"})
NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
                 "DELETE": "delete"}  # fmt: skip
_INT64 = (-(1 << 63), (1 << 63) - 1)

Query = Mapping[str, Sequence[str]]


class TargetError(ValueError):
    """A request target Go's URL parser refuses (the API server answers 400 before any handler runs)."""


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the API server's request-info filter reports for one request."""

    path: str  # the decoded path
    verb: str
    is_resource: bool
    api_prefix: str = ""
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    parts: tuple[str, ...] = ()
    # Why the API server's request-info fails for this request (it answers 500); empty when it does not.
    error: str = ""


def request_info(method: str, path: str, query: Query) -> RequestInfo:
    """Parse one request (``path`` decoded, ``query`` as ``decode_target`` returns it)."""
    verb = method.lower()
    parts = _split_path(path)
    if len(parts) < 3 or parts[0] not in API_PREFIXES:
        return RequestInfo(path, verb, False)
    prefix, rest = parts[0], parts[1:]
    group = ""
    if prefix not in GROUPLESS_PREFIXES:
        if len(rest) < 3:
            return RequestInfo(path, verb, False)
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]

    special = rest[0] in SPECIAL_VERBS
    if special:
        if len(rest) < 2:
            return RequestInfo(path, rest[0], True, prefix, group, version,
                               error=f"unable to determine kind and namespace from url {path}")  # fmt: skip
        verb, rest = rest[0], rest[1:]
    else:
        verb = _METHOD_VERBS.get(method.upper(), "")

    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]

    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 and verb not in SPECIAL_VERBS_NO_SUBRESOURCES else ""

    if not name and verb == "get":
        selected = _list_options(query)
        verb = "watch" if _watch(query, decoded=selected is not None) else "list"
        if selected:
            name = selected
    if not name and verb == "delete":
        verb = "deletecollection"
    return RequestInfo(path, verb, True, prefix, group, version, resource, subresource, namespace, name, tuple(rest))


def _split_path(path: str) -> list[str]:
    """Go's splitPath: trim slashes at both ends, then split on every slash (empty segments kept)."""
    trimmed = path.strip("/")
    return trimmed.split("/") if trimmed else []


def _watch(query: Query, *, decoded: bool) -> bool:
    """The ``watch`` option: ``runtime.Convert_Slice_string_To_bool`` when the list options decode (not
    ``0``, not EqualFold ``false``), the fallback's ``strings.ToLower`` comparison when they do not."""
    values = query.get("watch") or ()
    if not values:
        return False
    value = values[0]
    if decoded:
        return value != "0" and not (len(value) == 5 and value.casefold() == "false")
    return value.lower() not in ("false", "0")


def _list_options(query: Query) -> str | None:
    """None when the list options do not decode; else the name the field selector requires, if it is a
    valid path segment name ("" for none)."""
    for number in ("limit", "timeoutSeconds"):
        values = query.get(number) or ()
        if values and not _is_int64(values[0]):
            return None
    values = query.get("fieldSelector") or ()
    try:
        name = exact_match(values[0] if values else "", "metadata.name")
    except ValueError:
        return None
    if name is None or name in (".", "..") or "/" in name or "%" in name:
        return ""
    return name


def _is_int64(text: str) -> bool:
    """strconv.ParseInt(text, 10, 64) succeeds: an optional sign, then ASCII digits, in range."""
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return False
    return _INT64[0] <= int(text) <= _INT64[1]


# ---------------------------------------------------------------------- field selectors


def exact_match(selector: str, field: str) -> str | None:
    """``fields.ParseSelector(selector).RequiresExactMatch(field)``; ``ValueError`` if it does not parse."""
    terms: list[tuple[str, str, str]] = []
    for part in sorted(_split_terms(selector), key=lambda s: s.encode("utf-8", "surrogateescape")):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise ValueError(f"invalid selector: {selector!r}; can't understand {part!r}")
        lhs, op, rhs = split
        terms.append((lhs, op, _unescape_value(rhs)))
    for lhs, op, value in terms:
        if lhs == field and op != "!=":
            return value
    return None


def _split_terms(selector: str) -> list[str]:
    if not selector:
        return []
    terms, start, escaped = [], 0, False
    for i, ch in enumerate(selector):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


def _unescape_value(value: str) -> str:
    out: list[str] = []
    escaped = False
    for ch in value:
        if escaped:
            if ch not in "\\,=":
                raise ValueError(f"invalid escape sequence \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            raise ValueError(f"unescaped {ch!r} in a field selector value")
        else:
            out.append(ch)
    if escaped:
        raise ValueError("a field selector value may not end with a single backslash")
    return "".join(out)


# ---------------------------------------------------------------------- the request target, as net/url reads it


def decode_target(target: str) -> tuple[str, dict[str, list[str]]]:
    """(decoded path, query values) of an origin-form request target (``/path?query``), as Go's
    ``url.ParseRequestURI`` and ``URL.Query()`` read it; ``TargetError`` where Go refuses the target."""
    if not target.startswith("/"):
        raise TargetError("the request target must be an absolute path")
    raw_path, _, raw_query = target.partition("?")
    return _unescape(raw_path, query=False), parse_query(raw_query)


def parse_query(raw: str) -> dict[str, list[str]]:
    """``url.ParseQuery`` keeping what ``URL.Query()`` keeps: pairs with a ``;`` or a bad escape are dropped."""
    values: dict[str, list[str]] = {}
    for pair in raw.split("&"):
        if not pair or ";" in pair:
            continue
        key, _, value = pair.partition("=")
        try:
            key, value = _unescape(key, query=True), _unescape(value, query=True)
        except TargetError:
            continue
        values.setdefault(key, []).append(value)
    return values


_HEX = frozenset("0123456789abcdefABCDEF")


def _unescape(text: str, *, query: bool) -> str:
    """Go's ``unescape``: ``%XX`` decoded (bytes kept as they are, surrogate-escaped where not UTF-8),
    ``+`` a space in a query; a ``%`` without two hex digits is an error."""
    if "%" not in text and not (query and "+" in text):
        return text
    out = bytearray()
    i = 0
    raw = text.encode("utf-8", "surrogateescape")
    while i < len(raw):
        byte = raw[i]
        if byte == 0x25:  # '%'
            pair = raw[i + 1 : i + 3].decode("latin-1")
            if len(pair) < 2 or not set(pair) <= _HEX:
                raise TargetError(f"invalid URL escape {raw[i : i + 3].decode('latin-1')!r}")
            out.append(int(pair, 16))
            i += 3
            continue
        out.append(0x20 if query and byte == 0x2B else byte)
        i += 1
    return out.decode("utf-8", "surrogateescape")

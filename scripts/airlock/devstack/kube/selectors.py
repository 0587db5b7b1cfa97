"""Label and field selectors: parsed as apimachinery's labels.Parse and fields.ParseSelector parse them.

Label selector grammar (comma-separated requirements, whitespace allowed between tokens)::

    key | !key | key=v | key==v | key!=v | key in (v1,v2) | key notin (v1,v2) | key>N | key<N

``key!=v`` and ``notin`` also match objects without the label, as in Kubernetes. Field selectors are
``path=v``, ``path==v`` or ``path!=v``; which paths a resource supports is the caller's table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_KEY = re.compile(rf"^({_DNS_SUBDOMAIN}/)?{_NAME}$")
_VALUE = re.compile(rf"^({_NAME})?$")


class SelectorError(ValueError):
    """An unparseable selector; the message is what the API server answers (400 BadRequest)."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str  # exists, !, =, !=, in, notin, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key, "")
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        if self.operator in ("!=", "notin"):
            return not present or value not in self.values
        if not present:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(self.values[0])
        return number > bound if self.operator == "gt" else number < bound


@dataclass(frozen=True, slots=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        return all(r.matches(labels or {}) for r in self.requirements)


_TOKEN = re.compile(r"\s*(==|!=|!|=|,|\(|\)|<|>|[^\s=!,()<>]+)")


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None:  # pragma: no cover - the pattern accepts any non-space character
            raise SelectorError(f"unable to parse requirement: unexpected character at {position}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def _check_key(key: str) -> str:
    if len(key.rsplit("/", 1)[-1]) > 63 or not _KEY.match(key):
        raise SelectorError(
            f'unable to parse requirement: key: Invalid value: "{key}": name part must consist of alphanumeric '
            "characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )
    return key


def _check_value(value: str) -> str:
    if len(value) > 63 or not _VALUE.match(value):
        raise SelectorError(
            f'unable to parse requirement: values[0][value]: Invalid value: "{value}": a valid label must be an '
            "empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character"
        )
    return value


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse a ``labelSelector`` query value; raise :class:`SelectorError` as the API server would."""
    if not text or not text.strip():
        return LabelSelector()
    tokens = _tokens(text)
    requirements: list[Requirement] = []
    i = 0

    def expect_end_or_comma() -> None:
        nonlocal i
        if i < len(tokens):
            if tokens[i] != ",":
                raise SelectorError(
                    f"unable to parse requirement: found '{tokens[i]}', expected: ',' or 'end of string'")
            i += 1
            if i == len(tokens):
                raise SelectorError("found '', expected: !, identifier, or 'end of string'")

    while i < len(tokens):
        if tokens[i] == "!":
            if i + 1 >= len(tokens):
                raise SelectorError("unable to parse requirement: found '', expected: identifier")
            requirements.append(Requirement(_check_key(tokens[i + 1]), "!"))
            i += 2
            expect_end_or_comma()
            continue
        key = _check_key(tokens[i])
        i += 1
        if i >= len(tokens) or tokens[i] == ",":
            requirements.append(Requirement(key, "exists"))
            expect_end_or_comma()
            continue
        op = tokens[i]
        i += 1
        if op in ("=", "==", "!="):
            value = ""
            if i < len(tokens) and tokens[i] not in (",",):
                value = tokens[i]
                i += 1
            requirements.append(Requirement(key, "!=" if op == "!=" else "=", (_check_value(value),)))
        elif op in ("in", "notin"):
            if i >= len(tokens) or tokens[i] != "(":
                raise SelectorError(f"unable to parse requirement: found '{tokens[i] if i < len(tokens) else ''}', "
                                    "expected: '('")
            i += 1
            values: list[str] = []
            while i < len(tokens) and tokens[i] != ")":
                if tokens[i] == ",":
                    i += 1
                    continue
                values.append(_check_value(tokens[i]))
                i += 1
            if i >= len(tokens):
                raise SelectorError("unable to parse requirement: found '', expected: ')'")
            i += 1
            if not values:
                raise SelectorError(f"unable to parse requirement: values: Invalid value: []: for '{op}', "
                                    "'notin' operators, values set can't be empty")
            requirements.append(Requirement(key, op, tuple(values)))
        elif op in ("<", ">"):
            if i >= len(tokens) or not re.fullmatch(r"-?\d+", tokens[i]):
                raise SelectorError("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an "
                                    "integer")
            requirements.append(Requirement(key, "gt" if op == ">" else "lt", (tokens[i],)))
            i += 1
        else:
            raise SelectorError(
                f"unable to parse requirement: found '{op}', expected: in, notin, =, ==, !=, gt, lt"
            )
        expect_end_or_comma()
    return LabelSelector(tuple(requirements))


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    value: str
    equal: bool


@dataclass(frozen=True, slots=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, fields: Callable[[str], str | None]) -> bool:
        """``fields`` maps a supported field path to the object's value for it."""
        for r in self.requirements:
            actual = fields(r.field)
            if (actual == r.value) != r.equal:
                return False
        return True

    @property
    def names(self) -> set[str]:
        """The object names an equality on metadata.name restricts the selection to."""
        return {r.value for r in self.requirements if r.field == "metadata.name" and r.equal}


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, current, escaped = [], "", False
    for ch in text:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            current += ch
            escaped = True
        elif ch == separator:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_field_selector(text: str | None, supported: Callable[[str], bool]) -> FieldSelector:
    """Parse a ``fieldSelector``; ``supported`` says which field paths the resource allows."""
    if not text or not text.strip():
        return FieldSelector()
    requirements = []
    for part in _split_unescaped(text, ","):
        part = part.strip()
        if not part:
            continue
        match = re.match(r"^([^=!]+?)\s*(==|!=|=)(.*)$", part)
        if match is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = match.group(1).strip(), match.group(2), _unescape(match.group(3).strip())
        if not supported(field):
            raise SelectorError(f'field label not supported: {field}')
        requirements.append(FieldRequirement(field, value, op != "!="))
    return FieldSelector(tuple(requirements))

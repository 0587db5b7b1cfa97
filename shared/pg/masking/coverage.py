"""Coverage: what reaches a result column (a ``Flow``), and what the masker does about it.

A ``Flow`` says which rule-covered source columns can reach a value, whether the value is one of them
unchanged (``direct``), whether some input could not be traced (``unknown``), and whether its expression
is one of the forms that reveal nothing of their inputs (``verdict``; see ``REVEAL_NOTHING``). Lineage
(``lineage.py``) computes flows from a statement; ``sources_for`` turns them into one decision per
RowDescription field (``ColumnSource``), adding what RowDescription itself says (a field's table oid and
attnum name its source column when it is a plain column reference) and the result name (a result column
*named* like a rule is masked, as before):

- reveal-nothing form, with the result type that form has: detectors only;
- unknown lineage: masked whole (redacted), counted as ``lineage-unknown`` (fail closed);
- a covered column, unchanged: the rule's action (partial keeps the last four, token joins, ...);
- computed from a covered column: masked whole (redacted, whatever the rule's action: part of a value or
  a token of a derived value would give away part of the secret), counted under the source's rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from shared.masking.rules import MaskAction
from shared.pg.wire.messages import Field

LINEAGE_UNKNOWN = "lineage-unknown"  # count key of columns masked because lineage could not be established

class Verdict(StrEnum):
    """A form that reveals nothing of its inputs' values, and the result type that form has."""

    BOOLEAN = "boolean"  # comparisons, IS [NOT] NULL, EXISTS, ... : type bool
    COUNT = "count"  # count(...): int8
    LENGTH = "length"  # length(col) and friends, of a column as stored: int4


# The reveal-nothing list, with the type oid the server must report for the column (a form whose result
# type differs, e.g. an operator someone redefined, is not trusted).
REVEAL_NOTHING: dict[Verdict, frozenset[int]] = {
    Verdict.BOOLEAN: frozenset({16}),
    Verdict.COUNT: frozenset({20}),
    Verdict.LENGTH: frozenset({23}),
}
@dataclass(frozen=True, slots=True)
class Flow:
    """What reaches one value: covered source column names, and how."""

    sources: frozenset[str] = frozenset()
    unknown: bool = False
    direct: bool = False  # the value is one of ``sources``, unchanged
    verdict: Verdict | None = None  # the expression is a reveal-nothing form

    @property
    def clean(self) -> bool:
        return not self.sources and not self.unknown


CLEAN = Flow()
UNKNOWN = Flow(unknown=True)


def derive(flows: Iterable[Flow]) -> Flow:
    """A value computed from these values."""
    return _union(list(flows), keep_shape=False)


def merge(flows: Iterable[Flow]) -> Flow:
    """One of these values, unchanged (set-operation branches, a name several relations may mean)."""
    return _union(list(flows), keep_shape=True)


def _union(flows: list[Flow], *, keep_shape: bool) -> Flow:
    sources = frozenset().union(*(f.sources for f in flows))
    unknown = any(f.unknown for f in flows)
    if not sources and not unknown:
        return CLEAN
    if not keep_shape:
        return Flow(sources, unknown)
    live = [f for f in flows if not f.clean]
    verdicts = {f.verdict for f in live}
    verdict = verdicts.pop() if len(verdicts) == 1 else None
    return Flow(sources, unknown, bool(sources) and all(f.direct for f in live), verdict)


@dataclass(frozen=True, slots=True)
class Col:
    """One output column: its name (None: a name lineage cannot predict, so it matches any reference),
    and its type when it is a relation's column passed on unchanged (0: not known)."""

    name: str | None
    flow: Flow
    type_oid: int = 0


@dataclass(frozen=True, slots=True)
class Spread:
    """Any number of output columns, with any names, each with this flow (``*`` over a function)."""

    flow: Flow


Output = Col | Spread


@dataclass(frozen=True, slots=True)
class StatementRef:
    """Which statement produced a result: statement ``index`` of ``text`` (a simple Query's string may
    hold several)."""

    text: str
    index: int = 0


@dataclass(frozen=True, slots=True)
class ColumnSource:
    """Why and how a result column is masked whatever its values look like."""

    action: MaskAction
    counted: str  # "column:<source>" or "lineage-unknown"
    whole: bool = False  # computed or unknown: replaced whole, not by the rule's own action


RuleLookup = Callable[[str], MaskAction | None]


def sources_for(
    outputs: list[Output] | None,
    fields: Sequence[Field],
    analyzer: Origins | None,
    *,
    pending: bool = False,
    unknown_relation: Callable[[int], None] | None = None,
) -> tuple[ColumnSource | None, ...]:
    """One decision per RowDescription field (None: detectors only). ``analyzer`` None: no column rules.

    A field's origin the catalog does not know is a relation made since it was read: with ``pending``
    (the session's open transaction made relations lineage already knows by their statements) the text's
    lineage stands; otherwise the field is unknown, and ``unknown_relation`` hears of it."""
    if analyzer is None:
        return (None,) * len(fields)
    flows = align(outputs, len(fields))
    out: list[ColumnSource | None] = []
    for f, flow in zip(fields, flows, strict=True):
        if f.table_oid:  # the server says: this column of that relation, unchanged
            origin = analyzer.attribute_flow(f.table_oid, f.column)
            if origin is None:
                if unknown_relation is not None:
                    unknown_relation(f.table_oid)
                origin = CLEAN if pending and not flow.unknown else UNKNOWN
            flow = origin if flow.unknown else merge([flow, origin])
        out.append(decide(flow, f.type_oid, f.name, analyzer.rule_for))
    return tuple(out)


def decide(flow: Flow, type_oid: int | None, name: str, rule_for: RuleLookup) -> ColumnSource | None:
    """The decision for one value given its flow (``type_oid`` None: not known, as in COPY; the form
    alone then decides whether it reveals nothing)."""
    if flow.verdict is not None and (type_oid is None or type_oid in REVEAL_NOTHING[flow.verdict]):
        return None
    if flow.unknown:
        return ColumnSource(MaskAction.REDACT, LINEAGE_UNKNOWN, whole=True)
    if flow.sources:
        actions = {rule_for(s) for s in flow.sources}
        source = min(flow.sources)
        if flow.direct and len(actions) == 1:
            action = actions.pop()
            if action is not None:
                return ColumnSource(action, f"column:{source}")
        return ColumnSource(MaskAction.REDACT, f"column:{source}", whole=True)
    action = rule_for(name)  # a result column named like a rule, whatever it holds
    return ColumnSource(action, f"column:{name}") if action is not None else None


def align(outputs: list[Output] | None, width: int) -> list[Flow]:
    """The flow of each of ``width`` result columns. A ``Spread`` takes what the others leave; between two
    spreads, every column may be any of them."""
    if outputs is None:
        return [UNKNOWN] * width
    spreads = [i for i, o in enumerate(outputs) if isinstance(o, Spread)]
    if not spreads:
        return [o.flow for o in outputs] if len(outputs) == width else [UNKNOWN] * width
    first, last = spreads[0], spreads[-1]
    head, middle, tail = outputs[:first], outputs[first : last + 1], outputs[last + 1 :]
    room = width - len(head) - len(tail) - sum(1 for o in middle if isinstance(o, Col))
    if room < 0:
        return [UNKNOWN] * width
    span = width - len(head) - len(tail)
    fill = outputs[first].flow if len(spreads) == 1 else merge(o.flow for o in middle)
    return [o.flow for o in head] + [fill] * span + [o.flow for o in tail]


def judged(flow: Flow, verdict: Verdict | None) -> Flow:
    if verdict is None:
        return flow
    return Flow(flow.sources, flow.unknown, False, verdict)


class Origins(Protocol):
    """What ``sources_for`` needs of lineage: the rules, and the flow of a relation's attribute."""

    rule_for: RuleLookup

    def attribute_flow(self, table_oid: int, attnum: int) -> Flow | None: ...


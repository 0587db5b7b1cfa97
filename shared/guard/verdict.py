"""How a request's effects become one verdict, whatever the protocol.

A request (a SQL statement, a shell command line, a Kubernetes API call) does one or more things: its
*effects*. Each protocol says what its effects are and how its rules match one; the rest is here:

1. each effect takes the action of the first rule that matches it, or the default;
2. the request takes the strictest action of its effects: deny > hold > allow.

So an allow-list means what it says: a statement is allowed only if every one of its effects is, and a
kind of effect added later is not allowed by accident.

Rules may not be able to tell whether they match: an unqualified table name may live in any schema of
the search path, so a rule on ``payments.*`` may or may not cover ``cards``. Such a *maybe* never lets an
allow rule decide (its allowance might not apply), and always lets a deny or hold rule weigh in (its
refusal might apply); the effect then takes the strictest of the refusals it may fall under and of the
action the first certain match (or the default) gives. The verdict is therefore never more lenient than
the one the server's actual resolution would give.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Generic, Protocol, TypeVar


class Action(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    HOLD = "hold"


STRICTNESS: dict[Action, int] = {Action.ALLOW: 0, Action.HOLD: 1, Action.DENY: 2}


class Match(IntEnum):
    NO = 0
    MAYBE = 1
    YES = 2


E = TypeVar("E")
E_contra = TypeVar("E_contra", contravariant=True)


class Rule(Protocol[E_contra]):
    """A policy rule as the judge sees it (each protocol's rule model provides these)."""

    @property
    def name(self) -> str: ...

    @property
    def action(self) -> Action: ...

    @property
    def reason(self) -> str: ...

    def test(self, effect: E_contra) -> Match: ...


@dataclass(frozen=True, slots=True)
class EffectVerdict(Generic[E]):
    """The action one effect takes, and the rule that gave it ("default", "unknown", ... when no rule did)."""

    effect: E
    action: Action
    rule: str
    reason: str


def stricter(a: EffectVerdict[E] | None, b: EffectVerdict[E]) -> EffectVerdict[E]:
    """The stricter of two verdicts; the first one on a tie."""
    if a is None or STRICTNESS[b.action] > STRICTNESS[a.action]:
        return b
    return a


def judge_effect(
    effect: E, rules: Sequence[Rule[E]], default: Action, default_rule: str = "default", default_reason: str = ""
) -> EffectVerdict[E]:
    """The action of the first rule that surely matches ``effect`` (else the default), made stricter by
    every deny or hold rule before it that may match (see the module docstring)."""
    refusals: EffectVerdict[E] | None = None
    for rule in rules:
        match = rule.test(effect)
        if match is Match.NO:
            continue
        verdict = EffectVerdict(effect, rule.action, rule.name, rule.reason)
        if match is Match.YES:
            return stricter(refusals, verdict) if refusals is not None else verdict
        if rule.action is not Action.ALLOW:
            refusals = stricter(refusals, verdict)
    fallback = EffectVerdict(effect, default, default_rule, default_reason)
    return stricter(refusals, fallback) if refusals is not None else fallback


def strictest(verdicts: Iterable[EffectVerdict[E]]) -> EffectVerdict[E] | None:
    """The verdict of a request: its strictest effect's (the first such effect on a tie); None if none."""
    worst: EffectVerdict[E] | None = None
    for verdict in verdicts:
        worst = stricter(worst, verdict)
    return worst

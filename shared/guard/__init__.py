"""Protocol-neutral judging: the actions a rule can take and how a request's effects combine into one
verdict (``verdict``). Each protocol (``shared/pg/sql``, SSH, Kubernetes) says what its effects are and
how its rules match one; the combination is the same everywhere."""

from shared.guard.verdict import STRICTNESS, Action, EffectVerdict, Match, Rule, judge_effect, stricter, strictest

__all__ = ["STRICTNESS", "Action", "EffectVerdict", "Match", "Rule", "judge_effect", "stricter", "strictest"]

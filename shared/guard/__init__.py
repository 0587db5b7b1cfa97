"""Guardrails: classify SQL by effect (pglast) and judge it against the policy's rules."""

from shared.guard.classify import classify
from shared.guard.engine import Decision, GuardrailEngine, first_block
from shared.guard.kinds import Access, ClassifiedStatement, StatementKind, StatementVerdictInput, TableRef
from shared.guard.prepared import PreparedStatements
from shared.guard.rules import Action, GuardrailsPolicy, GuardRule, RuleMatch

__all__ = [
    "Access", "Action", "ClassifiedStatement", "Decision", "GuardRule", "GuardrailEngine", "GuardrailsPolicy",
    "PreparedStatements", "RuleMatch", "StatementKind", "StatementVerdictInput", "TableRef", "classify",
    "first_block",
]

"""SQL guardrails: classify SQL by effect (pglast) and judge it against the policy's rules."""

from shared.guard.verdict import Action
from shared.pg.sql.classify import classify
from shared.pg.sql.engine import Decision, GuardrailEngine, first_block
from shared.pg.sql.kinds import Access, ClassifiedStatement, StatementKind, StatementVerdictInput, TableRef
from shared.pg.sql.prepared import PreparedStatements
from shared.pg.sql.rules import GuardrailsPolicy, GuardRule, RuleMatch

__all__ = [
    "Access", "Action", "ClassifiedStatement", "Decision", "GuardRule", "GuardrailEngine", "GuardrailsPolicy",
    "PreparedStatements", "RuleMatch", "StatementKind", "StatementVerdictInput", "TableRef", "classify",
    "first_block",
]

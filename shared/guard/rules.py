"""The policy's ``guardrails`` section: ordered rules that map statements to allow / deny / hold.

```yaml
guardrails:
  dry_run: false          # decide and record, never block (for rolling out rules)
  default: allow          # no rule matched
  unknown: deny           # the statement's effect could not be established (checked before any rule)
  rules:
    - name: no-ddl
      match: {kinds: [ddl_create, ddl_alter, drop, truncate]}
      action: deny
      reason: schema changes need a change request
    - name: payments-writes-need-approval
      match: {tables: ["payments.*"], access: write}
      action: hold
```

A rule matches when *every* criterion it names matches (an empty ``match`` matches everything); within a
criterion, any listed value may match. Globs are fnmatch patterns, compared case-insensitively.
"""

from __future__ import annotations

from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.guard.kinds import Access, ClassifiedStatement, StatementKind, TableRef


class Action(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    HOLD = "hold"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RuleMatch(_Strict):
    """What a rule applies to; see the module docstring for the combination rules."""

    # Matches if any of the statement's effects (its kind or a nested one) is listed.
    kinds: list[StatementKind] = Field(default_factory=list)
    # Globs on "schema.table". An unqualified table in a statement may live in any schema of the
    # session's search_path, which Airlock does not track, so it is matched against the table part only.
    tables: list[str] = Field(default_factory=list)
    schemas: list[str] = Field(default_factory=list)
    # Globs on the function name, tried on both "schema.name" (as written) and the bare name.
    functions: list[str] = Field(default_factory=list)
    # Restricts ``tables`` / ``schemas`` to relations read or written.
    access: Literal["read", "write", "any"] = "any"
    # Scope (per identity / target / database, via bindings): globs; empty means every one.
    identities: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)
    databases: list[str] = Field(default_factory=list)

    @field_validator("tables", "schemas", "functions")
    @classmethod
    def _lowercase(cls, values: list[str]) -> list[str]:
        return [v.lower() for v in values]

    def in_scope(self, identity: str | None, target: str | None, database: str | None) -> bool:
        return all(
            not globs or (value is not None and any(fnmatchcase(value, g) for g in globs))
            for globs, value in ((self.identities, identity), (self.targets, target), (self.databases, database))
        )

    def matches(self, stmt: ClassifiedStatement) -> bool:
        if self.kinds and stmt.effects.isdisjoint(self.kinds):
            return False
        tables = [t for t in stmt.tables if self.access == "any" or t.access is Access(self.access)]
        if self.tables and not any(_table_matches(t, g) for t in tables for g in self.tables):
            return False
        if self.schemas and not any(
            t.schema is None or fnmatchcase(t.schema.lower(), g) for t in tables for g in self.schemas
        ):
            return False
        return not self.functions or any(
            fnmatchcase(f, g) or fnmatchcase(f.rpartition(".")[2], g) for f in stmt.functions for g in self.functions
        )


def _table_matches(table: TableRef, glob: str) -> bool:
    name = table.name.lower()
    if table.schema is not None:
        return fnmatchcase(f"{table.schema.lower()}.{name}", glob) or ("." not in glob and fnmatchcase(name, glob))
    return fnmatchcase(name, glob.rpartition(".")[2])


class GuardRule(_Strict):
    name: str = Field(min_length=1, max_length=128)
    match: RuleMatch = Field(default_factory=RuleMatch)
    action: Action
    # Shown to the agent with a deny or hold: say what to do instead.
    reason: str = ""
    # A hold rule's approver group (policy ``approvals.approver_groups``); None: ``approvals.default_approvers``.
    approvers: str | None = None


class GuardrailsPolicy(_Strict):
    """Rules are tried in order; the first match decides (see ``shared.guard.engine``)."""

    rules: list[GuardRule] = Field(default_factory=list)
    default: Action = Action.ALLOW
    unknown: Action = Action.DENY
    dry_run: bool = False
    cache_size: int = Field(default=4096, ge=0, le=1_000_000)

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[GuardRule]) -> list[GuardRule]:
        seen: set[str] = set()
        for rule in rules:
            if rule.name in seen:
                raise ValueError(f"duplicate rule name {rule.name!r}")
            seen.add(rule.name)
        return rules

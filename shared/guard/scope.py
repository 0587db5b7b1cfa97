"""Who a rule applies to: globs on the identity, the target and the database (or namespace, host ...).

Scope is fixed for a session's grant, so a judge drops out-of-scope rules once, when it is built."""

from __future__ import annotations

from fnmatch import fnmatchcase

from pydantic import BaseModel, ConfigDict, Field


class RuleScope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Globs; empty means every one.
    identities: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)
    databases: list[str] = Field(default_factory=list)

    def in_scope(self, identity: str | None, target: str | None, database: str | None) -> bool:
        return all(
            not globs or (value is not None and any(fnmatchcase(value, g) for g in globs))
            for globs, value in ((self.identities, identity), (self.targets, target), (self.databases, database))
        )

    def scoped(self) -> bool:
        return bool(self.identities or self.targets or self.databases)

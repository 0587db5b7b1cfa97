"""What a PostgreSQL session uses beyond the common services: the process's cancel-key registry, the
guardrail engines shared by sessions of one policy snapshot, the targets' catalogs masking reads, and the
memory of granted logins that gives the next identical login a head start on its backend login."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.controlplane import Grant
from shared.pg.sql.engine import GuardrailEngine

from ..services import Services
from .cancel import CancelRegistry
from .catalog import TargetCatalogs
from .headstart import HeadStarts

_MAX_ENGINES = 256


@dataclass
class GuardrailEngines:
    """One engine (and so one decision cache) per policy snapshot and scope, shared by sessions."""

    disabled: bool = False
    _engines: dict[tuple[int, str, str, str], GuardrailEngine] = field(default_factory=dict)

    def for_grant(self, grant: Grant) -> GuardrailEngine | None:
        if grant.guardrails is None or self.disabled:
            return None
        key = (grant.policy_version, grant.identity, grant.target, grant.database)
        engine = self._engines.get(key)
        if engine is None or engine.policy != grant.guardrails:
            if len(self._engines) >= _MAX_ENGINES:
                self._engines.clear()
            engine = GuardrailEngine(
                grant.guardrails, identity=grant.identity, target=grant.target, database=grant.database
            )
            self._engines[key] = engine
        return engine


@dataclass
class PgContext:
    services: Services
    cancels: CancelRegistry
    guardrails: GuardrailEngines
    catalogs: TargetCatalogs
    head_starts: HeadStarts = field(default_factory=HeadStarts)

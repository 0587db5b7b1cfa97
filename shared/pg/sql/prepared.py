"""What the server holds under a name (prepared statements, portals), as the server's replies confirm it.

Theory of operation. A Parse, a SQL ``PREPARE``, a Close, a ``DEALLOCATE`` or a ``DISCARD ALL`` only
*proposes* a change: the server may refuse it (the name exists already, a syntax error, an aborted
transaction, an earlier error that makes it skip to the next Sync). So each one is a ``PendingChange``
until the server's reply settles it: ``confirm`` (ParseComplete, CloseComplete, the statement's
CommandComplete) applies it, ``drop`` (an error, or a reply that never comes) forgets it.

A statement that runs a name (Bind, Execute, SQL ``EXECUTE``) is judged by *every* body the server may
hold under that name when it runs: the confirmed one, and each change still pending, which may or may
not succeed. A change proposed earlier in the same *batch* (one Query string; the extended-protocol
messages up to a Sync) has succeeded if the statement runs at all, because a failure skips the rest of
the batch: then only its outcome is possible. The caller judges each possibility and keeps the strictest
verdict, so what is judged always covers what the server runs.

SQL ``PREPARE`` and the extended protocol's Parse share one namespace on the server
(pg_prepared_statements), and so do they here. A name Airlock has not seen (prepared by a function, say)
resolves to ``None``: unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from shared.pg.sql.kinds import Access, ClassifiedStatement, Effect, StatementKind, TableRef

K = StatementKind
T = TypeVar("T")

ALL = "\0all"  # the name of a change that clears every name (DEALLOCATE ALL, DISCARD ALL)


@dataclass(slots=True, eq=False)
class PendingChange(Generic[T]):
    name: str  # or ALL
    entry: T | None  # None: the name is removed
    batch: int


@dataclass(slots=True)
class Namespace(Generic[T]):
    """One server-side namespace (prepared statements, or portals) with its pending changes."""

    confirmed: dict[str, T] = field(default_factory=dict)
    pending: list[PendingChange[T]] = field(default_factory=list)
    batch: int = 0

    def new_batch(self) -> None:
        """A Query or a Sync: what follows no longer depends on the success of what came before."""
        self.batch += 1

    def propose(self, name: str, entry: T | None) -> PendingChange[T]:
        change = PendingChange(name, entry, self.batch)
        self.pending.append(change)
        return change

    def confirm(self, change: PendingChange[T] | None) -> None:
        if change is None or change not in self.pending:
            return
        self.pending.remove(change)
        if change.name == ALL:
            self.confirmed.clear()
        elif change.entry is None:
            self.confirmed.pop(change.name, None)
        else:
            self.confirmed[change.name] = change.entry

    def drop(self, change: PendingChange[T] | None) -> None:
        if change is not None and change in self.pending:
            self.pending.remove(change)

    def clear(self) -> None:
        """The server dropped every entry (portals at the end of a transaction); pending changes stay."""
        self.confirmed.clear()

    def possible(self, name: str) -> list[T | None]:
        """Every entry the server may hold under ``name`` now (None: none at all)."""
        states: list[T | None] = [self.confirmed.get(name)]
        for change in self.pending:
            if change.name != name and change.name != ALL:
                continue
            outcome = None if change.name == ALL else change.entry
            if change.batch == self.batch:
                states = [outcome]  # it succeeded, or nothing after it in this batch runs
            elif outcome not in states:
                states.append(outcome)
        return states

    def only(self, name: str) -> T | None:
        """The entry under ``name`` when there is exactly one possibility, else None."""
        states = self.possible(name)
        return states[0] if len(states) == 1 else None


class PreparedStatements(Namespace[ClassifiedStatement]):
    """The prepared statements of one session, for judging SQL (the guardrail engine's view)."""

    def observe(self, stmt: ClassifiedStatement) -> PendingChange[ClassifiedStatement] | None:
        """PREPARE / DEALLOCATE / DISCARD ALL in a Query, as it is sent: a pending change."""
        return observe_sql(self, stmt, lambda body: body)

    def resolve_all(self, stmt: ClassifiedStatement) -> list[ClassifiedStatement]:
        """``stmt`` for each body its EXECUTE may run (itself when it executes nothing by name)."""
        return resolve_all(stmt, self.possible)

    def track_parse(self, name: str, stmt: ClassifiedStatement) -> PendingChange[ClassifiedStatement]:
        """A Parse of ``stmt`` under ``name``, as it is sent."""
        return self.propose(name, stmt)


def observe_sql(
    names: Namespace[T], stmt: ClassifiedStatement, entry: Callable[[ClassifiedStatement], T]
) -> PendingChange[T] | None:
    """The change a SQL statement proposes to the prepared-statement namespace, if any."""
    if stmt.kind is K.PREPARE and stmt.name is not None and stmt.body is not None:
        return names.propose(stmt.name, entry(stmt.body))
    if stmt.kind is K.DEALLOCATE:
        return names.propose(stmt.name if stmt.name is not None else ALL, None)
    if stmt.label == "DISCARD ALL":
        return names.propose(ALL, None)
    return None


def resolve_all(
    stmt: ClassifiedStatement, bodies: Callable[[str], list[ClassifiedStatement | None]]
) -> list[ClassifiedStatement]:
    """``stmt`` once per body an EXECUTE (or EXPLAIN [ANALYZE] EXECUTE) in it may run; ``bodies(name)``
    lists what the server may hold under a name (None: nothing Airlock knows)."""
    target = stmt if stmt.kind is K.EXECUTE else stmt.body if stmt.body is not None else None
    if target is None or target.kind is not K.EXECUTE:
        return [stmt]
    return [_with_body(stmt, body) for body in bodies(target.name or "")]


def unknown_name(stmt: ClassifiedStatement, name: str) -> ClassifiedStatement:
    return replace(stmt, kinds=stmt.kinds | {K.UNKNOWN}, effects=(Effect(K.UNKNOWN),),
                   error=f"prepared statement {name!r} is unknown to Airlock")


def _with_body(stmt: ClassifiedStatement, body: ClassifiedStatement | None) -> ClassifiedStatement:
    """Give an EXECUTE (or EXPLAIN [ANALYZE] EXECUTE) the effects, tables and functions of ``body``."""
    if stmt.kind is K.EXECUTE:
        if body is None:
            return unknown_name(stmt, stmt.name or "")
        return replace(stmt, body=body, kinds=stmt.kinds | body.kinds, effects=body.effects, tables=body.tables,
                       functions=body.functions, error=body.error, settings=body.settings)
    assert stmt.body is not None
    executed = _with_body(stmt.body, body)
    if stmt.kind is K.EXPLAIN_ANALYZE:
        effects = stmt.effects + executed.effects
    else:  # EXPLAIN only plans it: what it names is read
        effects = stmt.effects + tuple(Effect(K.EXPLAIN, TableRef(t.schema, t.name, Access.READ))
                                       for t in executed.tables)
        if K.UNKNOWN in executed.kinds:
            effects += (Effect(K.UNKNOWN),)
    kinds = stmt.kinds | {e.kind for e in effects}
    return replace(stmt, body=executed, kinds=kinds, effects=effects, tables=executed.tables,
                   functions=executed.functions, error=stmt.error or executed.error)

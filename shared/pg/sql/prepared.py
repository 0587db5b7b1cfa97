"""Per-session prepared statements, so ``EXECUTE x`` is judged by what ``x`` was prepared as.

SQL ``PREPARE`` and the extended protocol's Parse share one namespace on the server
(pg_prepared_statements), and so do they here. The unnamed statement ("") is replaced by every Parse and
destroyed by the next simple Query; ``DEALLOCATE ALL`` and ``DISCARD ALL`` forget everything. A name
Airlock has not seen (prepared before tracking began, or by a function) resolves to ``unknown``.
"""

from __future__ import annotations

from dataclasses import replace

from shared.pg.sql.classify import classify
from shared.pg.sql.kinds import Access, ClassifiedStatement, Effect, StatementKind, TableRef

K = StatementKind


class PreparedStatements:
    """Sans-I/O tracker of one session's prepared statements (feed it statements as they are sent)."""

    __slots__ = ("_named",)

    def __init__(self) -> None:
        self._named: dict[str, ClassifiedStatement] = {}

    def __len__(self) -> int:
        return len(self._named)

    def __contains__(self, name: str) -> bool:
        return name in self._named

    # ---------------------------------------------------------------- extended protocol

    def track_parse(
        self, name: str, sql: str, statements: list[ClassifiedStatement] | None = None
    ) -> ClassifiedStatement:
        """A Parse message: remember (and return) the classification of its single statement.

        ``statements`` is ``classify(sql)`` when the caller has it already (from a cache). A Parse holding
        no statement or several is ``unknown`` (the server refuses several, too).
        """
        if statements is None:
            statements = classify(sql)
        if len(statements) == 1:
            stmt = self.resolve(statements[0])
        else:
            error = "Parse message with no statement" if not statements else "several statements in one Parse"
            stmt = ClassifiedStatement(K.UNKNOWN, frozenset({K.UNKNOWN}), sql, (0, len(sql)), "statement",
                                       error=error, effects=(Effect(K.UNKNOWN),))
        self._named[name] = stmt
        return stmt

    def lookup(self, name: str) -> ClassifiedStatement | None:
        return self._named.get(name)

    def close(self, name: str) -> None:
        """A Close('S', name) message."""
        self._named.pop(name, None)

    def on_simple_query(self) -> None:
        """A simple Query destroys the unnamed prepared statement."""
        self._named.pop("", None)

    # ---------------------------------------------------------------- SQL level

    def observe(self, stmt: ClassifiedStatement) -> None:
        """Update the namespace for PREPARE / DEALLOCATE / DISCARD ALL as they are forwarded."""
        if stmt.kind is K.PREPARE and stmt.name is not None and stmt.body is not None:
            self._named[stmt.name] = self.resolve(stmt.body)
        elif stmt.kind is K.DEALLOCATE:
            if stmt.name is None:
                self._named.clear()
            else:
                self._named.pop(stmt.name, None)
        elif stmt.label == "DISCARD ALL":
            self._named.clear()

    def resolve(self, stmt: ClassifiedStatement) -> ClassifiedStatement:
        """Give an EXECUTE (or EXPLAIN [ANALYZE] EXECUTE) the effects, tables and functions of its body."""
        if stmt.kind is K.EXECUTE:
            return self._execute(stmt)
        if stmt.body is not None and stmt.body.kind is K.EXECUTE:
            body = self._execute(stmt.body)
            if stmt.kind is K.EXPLAIN_ANALYZE:
                effects = stmt.effects + body.effects
            else:  # EXPLAIN only plans it: what it names is read
                effects = stmt.effects + tuple(
                    Effect(K.EXPLAIN, TableRef(t.schema, t.name, Access.READ)) for t in body.tables
                )
                if K.UNKNOWN in body.kinds:
                    effects += (Effect(K.UNKNOWN),)
            kinds = stmt.kinds | {e.kind for e in effects}
            return replace(stmt, body=body, kinds=kinds, effects=effects, tables=body.tables,
                           functions=body.functions, error=stmt.error or body.error)
        return stmt

    def _execute(self, stmt: ClassifiedStatement) -> ClassifiedStatement:
        body = self._named.get(stmt.name or "")
        if body is None:
            return replace(stmt, kinds=stmt.kinds | {K.UNKNOWN}, effects=(Effect(K.UNKNOWN),),
                           error=f"prepared statement {stmt.name!r} is unknown to Airlock")
        return replace(stmt, body=body, kinds=stmt.kinds | body.kinds, effects=body.effects, tables=body.tables,
                       functions=body.functions, error=body.error)

"""Classify SQL by effect with PostgreSQL's own grammar (pglast), never with regular expressions.

Theory of operation. ``classify`` parses the whole query string once (the server, too, rejects the
whole string when any part fails to parse, so a syntax error yields one ``unknown`` statement for all of
it). Each top-level statement gets a *kind* from its node class (plus a few details: WHERE present, COPY
direction and target, EXPLAIN's ANALYZE option, SET's parameter). Then one generic walk over the
statement's tree collects what is nested anywhere: data-modifying statements in CTEs or in
``COPY (...) TO``, ``SELECT INTO``, function calls (in subqueries, LATERAL, ORDER BY, DEFAULT
expressions, ...) and relations. A node class the classifier has no rule for makes the statement
``unknown``: being unsure is a verdict, not a pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from pglast import ast, parse_sql
from pglast.enums import DiscardMode, ObjectType, VariableSetKind
from pglast.parser import ParseError

from shared.pg.sql.functions import (
    IDENTITY_SETTINGS,
    RELATION_FUNCTIONS,
    SIDE_EFFECT_FUNCTIONS,
    SQL_TEXT_FUNCTIONS,
    is_builtin,
)
from shared.pg.sql.kinds import Access, ClassifiedStatement, StatementKind, TableRef

K = StatementKind

# Statement classes whose kind follows from the class alone.
_SIMPLE: dict[type[ast.Node], StatementKind] = {
    ast.MergeStmt: K.MERGE,
    ast.TruncateStmt: K.TRUNCATE,
    ast.DropStmt: K.DROP, ast.DropOwnedStmt: K.DROP, ast.DropdbStmt: K.DROP, ast.DropTableSpaceStmt: K.DROP,
    ast.DropSubscriptionStmt: K.DROP, ast.DropUserMappingStmt: K.DROP,
    ast.CreateRoleStmt: K.ROLE_ADMIN, ast.AlterRoleStmt: K.ROLE_ADMIN, ast.AlterRoleSetStmt: K.ROLE_ADMIN,
    ast.DropRoleStmt: K.ROLE_ADMIN,
    ast.CreateFunctionStmt: K.CREATE_FUNCTION,
    ast.DoStmt: K.DO_BLOCK,
    ast.CallStmt: K.CALL,
    ast.AlterSystemStmt: K.ALTER_SYSTEM,
    ast.LoadStmt: K.LOAD,
    ast.VariableShowStmt: K.SHOW,
    ast.DiscardStmt: K.SET,
    ast.TransactionStmt: K.TRANSACTION, ast.ConstraintsSetStmt: K.TRANSACTION,
    ast.PrepareStmt: K.PREPARE,
    ast.ExecuteStmt: K.EXECUTE,
    ast.DeallocateStmt: K.DEALLOCATE,
    ast.DeclareCursorStmt: K.CURSOR, ast.FetchStmt: K.CURSOR, ast.ClosePortalStmt: K.CURSOR,
    ast.ListenStmt: K.LISTEN, ast.UnlistenStmt: K.LISTEN,
    ast.NotifyStmt: K.NOTIFY,
    ast.ClusterStmt: K.MAINTENANCE, ast.ReindexStmt: K.MAINTENANCE, ast.CheckPointStmt: K.MAINTENANCE,
    ast.RefreshMatViewStmt: K.MAINTENANCE,
    ast.LockStmt: K.LOCK,
    ast.AlterDefaultPrivilegesStmt: K.GRANT,
    # Code that runs later (rules, triggers, event triggers, views) is still a schema change.
    ast.IndexStmt: K.DDL_CREATE, ast.ViewStmt: K.DDL_CREATE, ast.RuleStmt: K.DDL_CREATE,
    ast.CompositeTypeStmt: K.DDL_CREATE, ast.DefineStmt: K.DDL_CREATE, ast.CreateTableAsStmt: K.DDL_CREATE,
    ast.ImportForeignSchemaStmt: K.DDL_CREATE, ast.CreatedbStmt: K.DDL_CREATE,
    ast.RenameStmt: K.DDL_ALTER, ast.CommentStmt: K.DDL_ALTER, ast.SecLabelStmt: K.DDL_ALTER,
    ast.ReassignOwnedStmt: K.DDL_ALTER, ast.ReplicaIdentityStmt: K.DDL_ALTER,
}

# Statement classes that write to the relation(s) they name directly.
_WRITE_TARGETS: dict[type[ast.Node], str] = {
    ast.InsertStmt: "relation", ast.UpdateStmt: "relation", ast.DeleteStmt: "relation",
    ast.MergeStmt: "relation", ast.CreateStmt: "relation", ast.IndexStmt: "relation",
    ast.ViewStmt: "view", ast.RuleStmt: "relation", ast.CreateTrigStmt: "relation",
    ast.AlterTableStmt: "relation", ast.RenameStmt: "relation", ast.CreatePolicyStmt: "table",
    ast.AlterPolicyStmt: "table", ast.RefreshMatViewStmt: "relation", ast.CreateSeqStmt: "sequence",
    ast.AlterSeqStmt: "sequence", ast.CreateForeignTableStmt: "relation",
}
_WRITE_LISTS: dict[type[ast.Node], str] = {ast.TruncateStmt: "relations", ast.LockStmt: "relations"}

_OBJECT_LABELS: dict[int, str] = {
    ObjectType.OBJECT_TABLE: "TABLE", ObjectType.OBJECT_INDEX: "INDEX", ObjectType.OBJECT_VIEW: "VIEW",
    ObjectType.OBJECT_MATVIEW: "MATERIALIZED VIEW", ObjectType.OBJECT_SCHEMA: "SCHEMA",
    ObjectType.OBJECT_FUNCTION: "FUNCTION", ObjectType.OBJECT_PROCEDURE: "PROCEDURE",
    ObjectType.OBJECT_SEQUENCE: "SEQUENCE", ObjectType.OBJECT_TYPE: "TYPE", ObjectType.OBJECT_TRIGGER: "TRIGGER",
    ObjectType.OBJECT_EXTENSION: "EXTENSION", ObjectType.OBJECT_DATABASE: "DATABASE",
    ObjectType.OBJECT_RULE: "RULE", ObjectType.OBJECT_POLICY: "POLICY",
}


# Longer texts (bulk INSERTs, generated SQL) are classified every time rather than pinned in memory.
MAX_CACHED_SQL = 16 * 1024


def classify(sql: str) -> list[ClassifiedStatement]:
    """Split ``sql`` into statements and classify each by its effect (see the module docstring)."""
    return list(_classify_cached(sql) if len(sql) <= MAX_CACHED_SQL else _classify(sql))


def _classify(sql: str) -> tuple[ClassifiedStatement, ...]:
    if "\0" in sql:
        # The parser reads a C string: it would silently judge only the text before the NUL.
        return (_unknown(sql, (0, len(sql)), "NUL byte in statement text"),)
    try:
        raws = parse_sql(sql)
    except ParseError as e:
        return (_unknown(sql, (0, len(sql)), f"syntax error: {e}"),)
    except Exception as e:  # the parser's C layer can raise other errors on hostile input
        return (_unknown(sql, (0, len(sql)), f"unparseable: {type(e).__name__}"),)
    out = []
    for raw in raws:
        start = raw.stmt_location or 0
        end = start + raw.stmt_len if raw.stmt_len else len(sql)
        if raw.stmt is not None:
            out.append(_statement(raw.stmt, sql[start:end].strip(), (start, end)))
    return tuple(out)


_classify_cached = lru_cache(maxsize=4096)(_classify)


def _unknown(text: str, span: tuple[int, int], error: str) -> ClassifiedStatement:
    return ClassifiedStatement(K.UNKNOWN, frozenset({K.UNKNOWN}), text, span, "statement", error=error)


def _statement(node: ast.Node, text: str, span: tuple[int, int]) -> ClassifiedStatement:
    kind = _kind(node)
    if kind is None:
        return _unknown(text, span, f"no rule for {type(node).__name__}")
    walk = _Walk()
    walk.mark_writes(node)
    body: ClassifiedStatement | None = None
    if isinstance(node, ast.ExplainStmt) and node.query is not None:
        body = _statement(node.query, text, span)
        walk.absorb(body, effects=kind is K.EXPLAIN_ANALYZE)
    elif isinstance(node, ast.PrepareStmt | ast.DeclareCursorStmt) and node.query is not None:
        body = _statement(node.query, text, span)
        # A cursor's query runs as it is fetched; a prepared one only when EXECUTEd.
        walk.absorb(body, effects=isinstance(node, ast.DeclareCursorStmt))
    else:
        walk.visit(node)
    effects = walk.effects | {kind}
    if kind in (K.UPDATE_NO_WHERE, K.DELETE_NO_WHERE):
        effects.add(K.UPDATE if kind is K.UPDATE_NO_WHERE else K.DELETE)
    return ClassifiedStatement(
        kind=kind,
        effects=frozenset(effects),
        text=text,
        span=span,
        label=_label(node, kind),
        tables=tuple(walk.tables),
        functions=tuple(walk.functions),
        name=getattr(node, "name", None) if kind in (K.PREPARE, K.EXECUTE, K.DEALLOCATE) else None,
        body=body,
        copy_format=_copy_format(node) if isinstance(node, ast.CopyStmt) else None,
        error=walk.error,
    )


def _kind(node: ast.Node) -> StatementKind | None:
    simple = _SIMPLE.get(type(node))
    if simple is not None:
        return simple
    if isinstance(node, ast.SelectStmt):
        return K.DDL_CREATE if node.intoClause is not None else K.SELECT
    if isinstance(node, ast.InsertStmt):
        return K.INSERT
    if isinstance(node, ast.UpdateStmt):
        return K.UPDATE if _restricts(node.whereClause) else K.UPDATE_NO_WHERE
    if isinstance(node, ast.DeleteStmt):
        return K.DELETE if _restricts(node.whereClause) else K.DELETE_NO_WHERE
    if isinstance(node, ast.CopyStmt):
        if node.is_program:
            return K.COPY_PROGRAM
        if node.filename is not None:
            return K.COPY_SERVER_FILE
        return K.COPY_FROM_CLIENT if node.is_from else K.COPY_TO_CLIENT
    if isinstance(node, ast.ExplainStmt):
        return K.EXPLAIN_ANALYZE if _explain_analyzes(node) else K.EXPLAIN
    if isinstance(node, ast.VariableSetStmt):
        name = str(node.name or "").lower()
        if name == "role":
            return K.SET_ROLE
        if name == "session_authorization":
            return K.SET_SESSION_AUTHORIZATION
        if node.kind == VariableSetKind.VAR_SET_MULTI and name == "transaction":
            return K.TRANSACTION
        return K.SET
    if isinstance(node, ast.GrantStmt | ast.GrantRoleStmt):
        return K.GRANT if node.is_grant else K.REVOKE
    if isinstance(node, ast.VacuumStmt):
        return K.VACUUM if node.is_vacuumcmd else K.ANALYZE
    name = type(node).__name__
    if name.startswith("Create"):
        return K.DDL_CREATE
    if name.startswith("Alter"):
        return K.DDL_ALTER
    return None


def _restricts(where: ast.Node | None) -> bool:
    """False for a missing WHERE and for one that cannot depend on the row (``WHERE true``, ``1=1``)."""
    if where is None:
        return False
    return any(isinstance(n, ast.ColumnRef | ast.SubLink | ast.FuncCall | ast.ParamRef | ast.CurrentOfExpr)
               for n in _nodes(where))


def _explain_analyzes(node: ast.ExplainStmt) -> bool:
    for opt in node.options or ():
        if opt.defname == "analyze":
            return _truthy(opt.arg)
    return False


def _truthy(arg: ast.Node | None) -> bool:
    """A DefElem boolean: absent means true; 'false', 'off', 0 mean false."""
    if arg is None:
        return True
    if isinstance(arg, ast.String):
        return str(arg.sval).lower() not in ("false", "off", "0", "no")
    if isinstance(arg, ast.Integer):
        return bool(arg.ival)
    if isinstance(arg, ast.Boolean):
        return bool(arg.boolval)
    return True


def _copy_format(node: ast.CopyStmt) -> str:
    for opt in node.options or ():
        if opt.defname == "format" and isinstance(opt.arg, ast.String):
            return str(opt.arg.sval).lower()
        if opt.defname in ("binary", "csv") and _truthy(opt.arg):  # pre-9.0 option spelling
            return str(opt.defname)
    return "text"


def _label(node: ast.Node, kind: StatementKind) -> str:
    """A command name for messages: "DROP TABLE", "DELETE", "EXPLAIN ANALYZE"."""
    if isinstance(node, ast.DropStmt):
        return "DROP " + _OBJECT_LABELS.get(int(node.removeType or 0), "object")
    if isinstance(node, ast.SelectStmt):
        return "SELECT INTO" if node.intoClause is not None else "SELECT"
    if isinstance(node, ast.CreateStmt):
        return "CREATE TABLE"
    if isinstance(node, ast.DiscardStmt):
        return "DISCARD " + DiscardMode(node.target or 0).name.removeprefix("DISCARD_")
    if isinstance(node, ast.CreateTableAsStmt):
        return "CREATE " + _OBJECT_LABELS.get(int(node.objtype or 0), "TABLE") + " AS"
    base = kind.value.removesuffix("_no_where").replace("_", " ").upper()
    return base if kind not in (K.DDL_CREATE, K.DDL_ALTER) else type(node).__name__.removesuffix("Stmt")


_SLOTS: dict[type, tuple[str, ...]] = {}


def _slots(cls: type) -> tuple[str, ...]:
    slots = _SLOTS.get(cls)
    if slots is None:
        slots = _SLOTS[cls] = tuple(getattr(cls, "__slots__", ()))
    return slots


def _nodes(node: object) -> Iterator[ast.Node]:
    """Every AST node under ``node`` (inclusive), depth first."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Node):
            yield item
            stack.extend(getattr(item, slot) for slot in _slots(type(item)))
        elif isinstance(item, tuple | list):
            stack.extend(item)


class _Walk:
    """Collects nested effects, tables and functions of one statement tree."""

    def __init__(self) -> None:
        self.effects: set[StatementKind] = set()
        self.tables: list[TableRef] = []
        self.functions: list[str] = []
        self.error: str | None = None
        self._writes: set[int] = set()
        self._ctes: set[str] = set()

    def mark_writes(self, node: ast.Node) -> None:
        """Remember the relations a statement writes directly (they are reported with write access)."""
        slot = _WRITE_TARGETS.get(type(node))
        if slot is not None and isinstance(getattr(node, slot, None), ast.RangeVar):
            self._writes.add(id(getattr(node, slot)))
        for rel in getattr(node, _WRITE_LISTS.get(type(node), ""), None) or ():
            self._writes.add(id(rel))
        into = getattr(node, "intoClause" if isinstance(node, ast.SelectStmt) else "into", None)
        if isinstance(node, ast.SelectStmt | ast.CreateTableAsStmt) and into is not None:
            self._writes.add(id(into.rel))
        if isinstance(node, ast.CopyStmt) and node.is_from and node.relation is not None:
            self._writes.add(id(node.relation))
        if isinstance(node, ast.DropStmt) and node.removeType in (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_VIEW,
                                                                  ObjectType.OBJECT_MATVIEW):
            for obj in node.objects or ():
                parts = [s.sval for s in obj if isinstance(s, ast.String)]
                if parts:
                    self._add_table(parts[-2] if len(parts) > 1 else None, str(parts[-1]), Access.WRITE)

    def absorb(self, inner: ClassifiedStatement, *, effects: bool) -> None:
        if effects:
            self.effects |= inner.effects
        self.tables.extend(inner.tables)
        self.functions.extend(inner.functions)
        self.error = self.error or inner.error

    def visit(self, root: ast.Node) -> None:
        nodes = list(_nodes(root))
        for n in nodes:
            if isinstance(n, ast.CommonTableExpr):
                self._ctes.add(str(n.ctename))
        for n in nodes:
            if n is not root:
                self._nested(n)
            if isinstance(n, ast.RangeVar):
                if n.schemaname is None and n.relname in self._ctes:
                    continue
                access = Access.WRITE if id(n) in self._writes else Access.READ
                self._add_table(n.schemaname, str(n.relname), access)
            elif isinstance(n, ast.FuncCall):
                self._call(n)

    def _nested(self, n: ast.Node) -> None:
        kind: StatementKind | None = None
        if isinstance(n, ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt | ast.MergeStmt):
            kind = _kind(n)
            self.mark_writes(n)
        elif isinstance(n, ast.SelectStmt) and n.intoClause is not None:
            kind = K.DDL_CREATE
            self.mark_writes(n)
        elif isinstance(n, ast.ExecuteStmt):
            # CREATE TABLE AS EXECUTE p: the prepared body is session state this walk cannot see.
            self.effects |= {K.EXECUTE, K.UNKNOWN}
            self.error = self.error or "EXECUTE nested in another statement"
        if kind is not None:
            self.effects.add(kind)
            if kind in (K.UPDATE_NO_WHERE, K.DELETE_NO_WHERE):
                self.effects.add(K.UPDATE if kind is K.UPDATE_NO_WHERE else K.DELETE)

    def _add_table(self, schema: str | None, name: str, access: Access) -> None:
        ref = TableRef(schema, name, access)
        if ref not in self.tables:
            self.tables.append(ref)

    def _call(self, call: ast.FuncCall) -> None:
        parts = [str(p.sval).lower() for p in call.funcname or () if isinstance(p, ast.String)]
        schema, name = (parts[-2] if len(parts) > 1 else None), parts[-1]
        qualified = ".".join(parts)
        if qualified not in self.functions:
            self.functions.append(qualified)
        args = list(call.args or ())
        if name == "set_config" and schema in (None, "pg_catalog"):
            # set_config('x', v, ...) is SET x = v; its risk is the parameter, judged like SET's.
            self._set_config(args)
        elif name in SIDE_EFFECT_FUNCTIONS:
            self.effects.add(K.SIDE_EFFECT_FUNCTION)
            if name == "pg_notify":
                self.effects.add(K.NOTIFY)
        elif name in SQL_TEXT_FUNCTIONS and schema in (None, "pg_catalog"):
            self._sql_text(args)
        elif name in RELATION_FUNCTIONS and schema in (None, "pg_catalog"):
            self._relation_arg(name, args)
        elif not is_builtin(schema, name):
            self.effects.add(K.OPAQUE_FUNCTION)

    def _set_config(self, args: list[ast.Node]) -> None:
        setting = _literal(args[0]) if args else None
        if setting is None:
            self.effects.add(K.UNKNOWN)
            self.error = self.error or "set_config() with a computed parameter name"
        elif setting.lower() in IDENTITY_SETTINGS:
            self.effects.add(K(IDENTITY_SETTINGS[setting.lower()]))
        else:
            self.effects.add(K.SET)

    def _relation_arg(self, name: str, args: list[ast.Node]) -> None:
        """table_to_xml('payments.cards', ...) reads a table no FROM clause names."""
        target = _literal(args[0]) if args else None
        if target is None or name.startswith("database_"):
            self.effects.add(K.UNKNOWN)
            self.error = self.error or f"{name}() reads relations Airlock cannot name"
        elif name.startswith("schema_"):
            self._add_table(target.strip('"'), "*", Access.READ)
        else:
            schema, _, table = target.rpartition(".")
            self._add_table(schema.strip('"') or None, table.strip('"'), Access.READ)

    def _sql_text(self, args: list[ast.Node]) -> None:
        """query_to_xml('...') and friends run their text argument: classify it as a statement."""
        text = _literal(args[0]) if args else None
        if text is None:
            self.effects.add(K.UNKNOWN)
            self.error = self.error or "function runs SQL computed at run time"
            return
        for inner in classify(text):
            self.absorb(inner, effects=True)


def _literal(node: ast.Node) -> str | None:
    """The value of a string constant (possibly cast, e.g. ``'role'::text``), else None."""
    while isinstance(node, ast.TypeCast) and node.arg is not None:
        node = node.arg
    if isinstance(node, ast.A_Const) and isinstance(node.val, ast.String):
        return str(node.val.sval)
    return None

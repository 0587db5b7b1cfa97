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
from pglast.enums import DiscardMode, ObjectType, TransactionStmtKind, VariableSetKind
from pglast.parser import ParseError

from shared.pg.sql.functions import (
    IDENTITY_SETTINGS,
    RELATION_FUNCTIONS,
    SIDE_EFFECT_FUNCTIONS,
    SQL_TEXT_FUNCTIONS,
    is_builtin,
)
from shared.pg.sql.kinds import Access, ClassifiedStatement, Effect, StatementKind, TableRef

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
    return ClassifiedStatement(
        K.UNKNOWN, frozenset({K.UNKNOWN}), text, span, "statement", error=error, effects=(Effect(K.UNKNOWN),)
    )


# Statement kinds whose relations are read by the statement itself (their reads carry its kind, so a rule
# on ``copy_to_client`` sees the tables copied); in any other statement a relation read is a ``select``.
_READING_KINDS = frozenset({K.SELECT, K.COPY_TO_CLIENT, K.EXPLAIN})


def _statement(node: ast.Node, text: str, span: tuple[int, int]) -> ClassifiedStatement:
    kind = _kind(node)
    if kind is None:
        return _unknown(text, span, f"no rule for {type(node).__name__}")
    walk = _Walk(kind if kind in _READING_KINDS else K.SELECT)
    walk.mark_writes(node, kind)
    body: ClassifiedStatement | None = None
    if isinstance(node, ast.ExplainStmt) and node.query is not None:
        body = _statement(node.query, text, span)
        if kind is K.EXPLAIN_ANALYZE:
            walk.absorb(body)  # it runs its query
        else:
            walk.absorb_reads(body, K.EXPLAIN)  # it plans its query: what it names is read, nothing runs
    elif isinstance(node, ast.PrepareStmt) and node.query is not None:
        # A PREPARE runs nothing: EXECUTE is judged by what the server holds when it runs (``prepared``).
        body = _statement(node.query, text, span)
        walk.name_only(body)
    elif isinstance(node, ast.DeclareCursorStmt) and node.query is not None:
        body = _statement(node.query, text, span)
        walk.absorb(body)  # a cursor's query runs as it is fetched
    else:
        walk.visit(node)
    kinds = {e.kind for e in walk.effects} | {kind}
    own_settings = _settings(node)
    if kind is not K.EXECUTE and not any(e.kind is kind for e in walk.effects):
        # The statement itself, when it touched no relation of its own kind.
        setting = own_settings[0] if len(own_settings) == 1 and not _turns_on(node) else None
        walk.add(Effect(kind, setting=setting))
    for k in tuple(kinds):
        if k in (K.UPDATE_NO_WHERE, K.DELETE_NO_WHERE):
            kinds.add(K.UPDATE if k is K.UPDATE_NO_WHERE else K.DELETE)
    return ClassifiedStatement(
        kind=kind,
        kinds=frozenset(kinds),
        text=text,
        span=span,
        label=_label(node, kind),
        tables=tuple(walk.tables),
        functions=tuple(walk.functions),
        name=getattr(node, "name", None) if kind in (K.PREPARE, K.EXECUTE, K.DEALLOCATE) else None,
        body=body,
        copy_format=_copy_format(node) if isinstance(node, ast.CopyStmt) else None,
        error=walk.error,
        effects=tuple(walk.effects),
        settings=tuple(walk.settings) + own_settings,
    )


def _settings(node: ast.Node) -> tuple[str, ...]:
    """The run-time settings a statement changes by its own syntax (set_config() calls: ``_Walk``)."""
    if isinstance(node, ast.VariableSetStmt):
        if node.kind == VariableSetKind.VAR_RESET_ALL:
            return ("*",)
        if node.kind == VariableSetKind.VAR_SET_MULTI:  # SET TRANSACTION / SESSION CHARACTERISTICS ...
            return _transaction_modes(node.args)
        return (str(node.name or "").lower(),)
    if isinstance(node, ast.DiscardStmt) and node.target == DiscardMode.DISCARD_ALL:
        return ("*",)
    if isinstance(node, ast.TransactionStmt):
        if node.kind in _TRANSACTION_ENDS:
            return ("*",)
        return _transaction_modes(node.options)
    return ()


def _turns_on(node: ast.Node) -> bool:
    """``SET x = on`` (or true, 1, yes): asking for a read-only guard is not switching one off."""
    if not isinstance(node, ast.VariableSetStmt) or node.kind != VariableSetKind.VAR_SET_VALUE or not node.args:
        return False
    value = node.args[0].val if isinstance(node.args[0], ast.A_Const) else None
    if isinstance(value, ast.String):
        return str(value.sval).lower() in ("on", "true", "yes", "1")
    if isinstance(value, ast.Integer):
        return bool(value.ival)
    return False


def _transaction_modes(options: object) -> tuple[str, ...]:
    """BEGIN READ WRITE, SET TRANSACTION READ WRITE: they set transaction_read_only (to off)."""
    for opt in options if isinstance(options, tuple | list) else ():
        if isinstance(opt, ast.DefElem) and opt.defname == "transaction_read_only" and isinstance(opt.arg, ast.A_Const):
            value = opt.arg.val
            if isinstance(value, ast.Integer) and not value.ival:
                return ("transaction_read_only",)
    return ()


# COMMIT, ROLLBACK, ROLLBACK TO SAVEPOINT, PREPARE TRANSACTION: SET LOCAL values (and SETs of a rolled-back
# transaction) revert, so settings may change.
_TRANSACTION_ENDS = frozenset(
    {TransactionStmtKind.TRANS_STMT_COMMIT, TransactionStmtKind.TRANS_STMT_ROLLBACK,
     TransactionStmtKind.TRANS_STMT_ROLLBACK_TO, TransactionStmtKind.TRANS_STMT_PREPARE}
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
    """Collects the effects of one statement tree: each relation read or written, each function called,
    and what nested statements (CTEs, ``COPY (...) TO``, SQL given as text) do."""

    def __init__(self, read_kind: StatementKind) -> None:
        self.read_kind = read_kind  # the kind of a relation read
        self.effects: list[Effect] = []
        self.tables: list[TableRef] = []
        self.functions: list[str] = []
        self.error: str | None = None
        self._writes: dict[int, StatementKind] = {}  # id(RangeVar) -> the kind of the statement writing it
        self._ctes: set[str] = set()
        self._seen: set[Effect] = set()
        self.settings: list[str] = []

    def add(self, effect: Effect) -> None:
        if effect not in self._seen:
            self._seen.add(effect)
            self.effects.append(effect)
        if effect.kind is K.UNKNOWN and self.error is None:
            self.error = "unrecognised statement"

    def unknown(self, error: str) -> None:
        self.error = self.error or error
        self.add(Effect(K.UNKNOWN))

    def mark_writes(self, node: ast.Node, kind: StatementKind) -> None:
        """Remember the relations a statement writes directly (each is an effect of ``kind``)."""
        slot = _WRITE_TARGETS.get(type(node))
        if slot is not None and isinstance(getattr(node, slot, None), ast.RangeVar):
            self._writes[id(getattr(node, slot))] = kind
        for rel in getattr(node, _WRITE_LISTS.get(type(node), ""), None) or ():
            self._writes[id(rel)] = kind
        into = getattr(node, "intoClause" if isinstance(node, ast.SelectStmt) else "into", None)
        if isinstance(node, ast.SelectStmt | ast.CreateTableAsStmt) and into is not None:
            self._writes[id(into.rel)] = K.DDL_CREATE
        if isinstance(node, ast.CopyStmt) and node.is_from and node.relation is not None:
            self._writes[id(node.relation)] = kind
        if isinstance(node, ast.DropStmt) and node.removeType in (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_VIEW,
                                                                  ObjectType.OBJECT_MATVIEW):
            for obj in node.objects or ():
                parts = [s.sval for s in obj if isinstance(s, ast.String)]
                if parts:
                    self._relation(parts[-2] if len(parts) > 1 else None, str(parts[-1]), kind, Access.WRITE)

    def absorb(self, inner: ClassifiedStatement) -> None:
        """``inner`` runs as part of this statement: its effects are this statement's."""
        for effect in inner.effects:
            self.add(effect)
        self._names(inner)
        self.settings.extend(inner.settings)
        self.error = self.error or inner.error

    def absorb_reads(self, inner: ClassifiedStatement, kind: StatementKind) -> None:
        """``inner`` is only planned: each relation it names is an effect of ``kind``, nothing else runs."""
        for table in inner.tables:
            self.add(Effect(kind, TableRef(table.schema, table.name, Access.READ)))
        self._names(inner)
        if K.UNKNOWN in inner.kinds:
            self.unknown(inner.error or "unrecognised statement")

    def name_only(self, inner: ClassifiedStatement) -> None:
        """``inner`` does not run now: what it names is reported, none of its effects."""
        self._names(inner)

    def _names(self, inner: ClassifiedStatement) -> None:
        for table in inner.tables:
            if table not in self.tables:
                self.tables.append(table)
        for function in inner.functions:
            if function not in self.functions:
                self.functions.append(function)

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
                written = self._writes.get(id(n))
                if written is None:
                    self._relation(n.schemaname, str(n.relname), self.read_kind, Access.READ)
                else:
                    self._relation(n.schemaname, str(n.relname), written, Access.WRITE)
            elif isinstance(n, ast.FuncCall):
                self._call(n)

    def _nested(self, n: ast.Node) -> None:
        if isinstance(n, ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt | ast.MergeStmt):
            kind = _kind(n)
            assert kind is not None
            self.mark_writes(n, kind)
        elif isinstance(n, ast.SelectStmt) and n.intoClause is not None:
            self.mark_writes(n, K.DDL_CREATE)
        elif isinstance(n, ast.ExecuteStmt):
            # CREATE TABLE AS EXECUTE p: the prepared body is session state this walk cannot see.
            self.unknown("EXECUTE nested in another statement")

    def _relation(self, schema: str | None, name: str, kind: StatementKind, access: Access) -> None:
        ref = TableRef(schema, name, access)
        if ref not in self.tables:
            self.tables.append(ref)
        self.add(Effect(kind, ref))

    def _call(self, call: ast.FuncCall) -> None:
        parts = [str(p.sval).lower() for p in call.funcname or () if isinstance(p, ast.String)]
        schema, name = (parts[-2] if len(parts) > 1 else None), parts[-1]
        qualified = ".".join(parts)
        if qualified not in self.functions:
            self.functions.append(qualified)
        args = list(call.args or ())
        if name == "set_config" and schema in (None, "pg_catalog"):
            # set_config('x', v, ...) is SET x = v (a SELECT that calls it is not read-only).
            self._set_config(args, qualified)
        elif name in SIDE_EFFECT_FUNCTIONS:
            self.add(Effect(K.SIDE_EFFECT_FUNCTION, function=qualified))
            if name == "pg_notify":
                self.add(Effect(K.NOTIFY, function=qualified))
        elif name in SQL_TEXT_FUNCTIONS and schema in (None, "pg_catalog"):
            self.add(Effect(K.FUNCTION, function=qualified))
            self._sql_text(args)
        elif name in RELATION_FUNCTIONS and schema in (None, "pg_catalog"):
            self.add(Effect(K.FUNCTION, function=qualified))
            self._relation_arg(name, args)
        elif is_builtin(schema, name):
            self.add(Effect(K.FUNCTION, function=qualified))
        else:
            self.add(Effect(K.OPAQUE_FUNCTION, function=qualified))

    def _set_config(self, args: list[ast.Node], qualified: str) -> None:
        setting = _literal(args[0]) if args else None
        if setting is None:
            self.unknown("set_config() with a computed parameter name")
        elif setting.lower() in IDENTITY_SETTINGS:
            self.add(Effect(K(IDENTITY_SETTINGS[setting.lower()]), function=qualified, setting=setting.lower()))
        else:
            value = _literal(args[1]) if len(args) > 1 else None
            asks_on = value is not None and value.lower() in ("on", "true", "yes", "1")
            self.add(Effect(K.SET, function=qualified, setting=None if asks_on else setting.lower()))
        if setting is not None:
            self.settings.append(setting.lower())

    def _relation_arg(self, name: str, args: list[ast.Node]) -> None:
        """table_to_xml('payments.cards', ...) reads a table no FROM clause names."""
        target = _literal(args[0]) if args else None
        if target is None or name.startswith("database_"):
            self.unknown(f"{name}() reads relations Airlock cannot name")
        elif name.startswith("schema_"):
            self._relation(target.strip('"'), "*", self.read_kind, Access.READ)
        else:
            schema, _, table = target.rpartition(".")
            self._relation(schema.strip('"') or None, table.strip('"'), self.read_kind, Access.READ)

    def _sql_text(self, args: list[ast.Node]) -> None:
        """query_to_xml('...') and friends run their text argument: classify it as a statement."""
        text = _literal(args[0]) if args else None
        if text is None:
            self.unknown("function runs SQL computed at run time")
            return
        for inner in classify(text):
            self.absorb(inner)


def _literal(node: ast.Node) -> str | None:
    """The value of a string constant (possibly cast, e.g. ``'role'::text``), else None."""
    while isinstance(node, ast.TypeCast) and node.arg is not None:
        node = node.arg
    if isinstance(node, ast.A_Const) and isinstance(node.val, ast.String):
        return str(node.val.sval)
    return None

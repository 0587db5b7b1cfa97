"""Column lineage: which rule-covered source columns can reach each column of a result (see coverage.py
for the flows it computes and the decisions made from them).

Theory of operation. A column rule covers a *source* column by name (``ssn``, ``*card*``); what reaches
the agent is a *result* column that may be that column under another name (``SELECT ssn AS x``), a value
computed from it (``reverse(card_number)``), a whole row holding it (``row_to_json(c)``), or something the
proxy cannot see into (a user-defined function, a relation it does not know). ``LineageAnalyzer`` parses
the statement with PostgreSQL's own grammar (pglast) and follows every output expression down to the
columns it reads, through subqueries, CTEs (recursive ones to a fixpoint), set operations, LATERAL,
scalar subqueries, joins, views (their definitions, recursively) and DML ``RETURNING``. Each output gets a
``Flow``: the covered source names it reads, whether the value is one of them unchanged (``direct``),
whether some input could not be traced (``unknown``), and whether the expression is one of the forms that
reveal nothing of their inputs (``verdict``; see ``REVEAL_NOTHING``).

What lineage does not follow, by design, is what *selects* rows rather than what they hold: WHERE, JOIN
conditions, GROUP BY, HAVING, ORDER BY, LIMIT, window partitions and orderings. Those reveal at most
which rows exist and in what order (one bit per row and query), as a boolean comparison does.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

from pglast import ast, parse_sql
from pglast.enums import A_Expr_Kind, MinMaxOp, SetOperation, SubLinkType
from pglast.parser import ParseError, normalize
from pglast.stream import RawStream

from shared.pg.masking.catalog import DATA_EXPOSING, DEFINED_KINDS, Attribute, Catalog, Relation
from shared.pg.masking.coverage import (
    CLEAN,
    UNKNOWN,
    Col,
    ColumnSource,
    Flow,
    Output,
    RuleLookup,
    Spread,
    StatementRef,
    Verdict,
    align,
    derive,
    judged,
    merge,
    sources_for,
)
from shared.pg.sql.functions import RELATION_FUNCTIONS, SQL_TEXT_FUNCTIONS
from shared.pg.sql.pg_builtins import BUILTIN_FUNCTIONS
from shared.pg.wire.messages import Field

log = logging.getLogger(__name__)

_LENGTHS = frozenset({"length", "char_length", "character_length", "octet_length", "bit_length"})
_COMPARISONS = frozenset({
    "=", "<>", "!=", "<", ">", "<=", ">=", "~", "~*", "!~", "!~*", "~~", "~~*", "!~~", "!~~*", "^@",
})
_PREDICATE_KINDS = frozenset({
    A_Expr_Kind.AEXPR_OP_ANY, A_Expr_Kind.AEXPR_OP_ALL, A_Expr_Kind.AEXPR_DISTINCT,
    A_Expr_Kind.AEXPR_NOT_DISTINCT, A_Expr_Kind.AEXPR_IN, A_Expr_Kind.AEXPR_LIKE, A_Expr_Kind.AEXPR_ILIKE,
    A_Expr_Kind.AEXPR_SIMILAR, A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_NOT_BETWEEN,
    A_Expr_Kind.AEXPR_BETWEEN_SYM, A_Expr_Kind.AEXPR_NOT_BETWEEN_SYM,
})
# Built-ins whose result depends on data their arguments do not carry: they run SQL given as text, dump
# whole relations, or read large objects and files.
READS_DATA = SQL_TEXT_FUNCTIONS | RELATION_FUNCTIONS | frozenset({
    "cursor_to_xml", "cursor_to_xmlschema", "lo_get", "loread", "pg_read_file", "pg_read_binary_file",
})
_MAX_DEPTH = 12  # views of views of ...
_MAX_FIXPOINT = 6  # recursive CTE iterations
_CACHE = 2048
_DecidedKey = tuple[tuple[str, int] | None, tuple[Field, ...], bool]
_MAX_SHAPED = 16 * 1024


# ------------------------------------------------------------------------------------------------ items


class _Item:
    """A FROM item: what its columns carry."""

    refname: str | None = None

    def column(self, name: str) -> Flow | None:
        raise NotImplementedError

    def expand(self) -> list[Output]:
        raise NotImplementedError

    def whole(self) -> Flow:
        return derive(o.flow for o in self.expand())

    def type_of(self, name: str) -> int | None:
        """The type of its column ``name`` (None: no such column; 0: not known)."""
        return 0 if self.column(name) is not None else None


class _Columns(_Item):
    def __init__(self, refname: str | None, cols: Sequence[Output]) -> None:
        self.refname = refname
        self.cols = list(cols)

    def column(self, name: str) -> Flow | None:
        hits = [o.flow for o in self.cols if isinstance(o, Spread) or o.name is None or o.name == name]
        return merge(hits) if hits else None

    def expand(self) -> list[Output]:
        return list(self.cols)

    def type_of(self, name: str) -> int | None:
        hits = [o for o in self.cols if isinstance(o, Spread) or o.name is None or o.name == name]
        if not hits:
            return None
        return hits[0].type_oid if len(hits) == 1 and isinstance(hits[0], Col) else 0


class _Opaque(_Item):
    """An item whose columns are not known: any name may be one of them, each with ``flow``."""

    def __init__(self, refname: str | None, flow: Flow) -> None:
        self.refname = refname
        self.flow = flow

    def column(self, name: str) -> Flow | None:
        return self.flow

    def expand(self) -> list[Output]:
        return [Spread(self.flow)]


class _Join(_Item):
    def __init__(self, refname: str | None, left: _Item, right: _Item, using: list[str] | None, natural: bool):
        self.refname = refname
        self.left, self.right, self.using, self.natural = left, right, using, natural

    def column(self, name: str) -> Flow | None:
        hits = [f for f in (self.left.column(name), self.right.column(name)) if f is not None]
        return merge(hits) if hits else None

    def expand(self) -> list[Output]:
        left, right = self.left.expand(), self.right.expand()
        if not self.using and not self.natural:
            return left + right
        named = [o for o in left + right if isinstance(o, Col) and o.name is not None]
        if len(named) != len(left) + len(right):  # a merged column's position cannot be known
            return [Spread(merge(o.flow for o in left + right))]
        right_names = {o.name for o in right if isinstance(o, Col)}
        common = [o.name for o in left if isinstance(o, Col) and o.name is not None and o.name in right_names]
        names = self.using or common
        merged: list[Output] = [
            Col(n, merge(f for f in (self.left.column(n), self.right.column(n)) if f is not None)) for n in names
        ]
        rest = [o for o in left + right if isinstance(o, Col) and o.name not in names]
        return merged + rest


class _Scope:
    def __init__(self, parent: _Scope | None, ctes: dict[str, list[Output]] | None = None) -> None:
        self.parent = parent
        self.items: list[_Item] = []  # every item reachable by name at this level
        self.top: list[_Item] = []  # the FROM list, in order (what '*' expands)
        self.ctes: dict[str, list[Output]] = dict(ctes if ctes is not None else parent.ctes if parent else {})


# ------------------------------------------------------------------------------------------------ analyzer


class LineageAnalyzer:
    """Lineage of statements under one catalog snapshot and one set of column rules.

    ``catalog`` None means the proxy could not read the target's catalog: every relation's lineage is
    then unknown (fail closed). Results are cached by statement text."""

    def __init__(self, catalog: Catalog | None, rule_for: RuleLookup) -> None:
        self.catalog = catalog
        self.rule_for = rule_for
        self._cache: OrderedDict[tuple[str, int], list[Output] | None] = OrderedDict()  # by statement shape
        self._decided: dict[_DecidedKey, tuple[ColumnSource | None, ...]] = {}  # by shape, fields, pending
        self._relations: dict[int, list[Output]] = {}
        self._touches: dict[tuple[str, int], bool] = {}
        self._defining: set[int] = set()
        self._depth = 0

    # ------------------------------------------------------------ public

    def outputs(self, text: str, index: int = 0) -> list[Output] | None:
        """The outputs of statement ``index`` of ``text``, or None when its rows cannot be traced."""
        return self._outputs((shape(text), index), text, index)

    def sources(
        self,
        statement: StatementRef | None,
        fields: Sequence[Field],
        *,
        pending: bool,
        unknown_relation: Callable[[int], None] | None,
    ) -> tuple[ColumnSource | None, ...]:
        """``coverage.sources_for`` the statement's outputs, remembered per statement shape and fields."""
        shaped = None if statement is None else (shape(statement.text), statement.index)
        key = (shaped, tuple(fields), pending)
        hit = self._decided.get(key)
        if hit is None:
            outputs = None
            if statement is not None and shaped is not None:
                outputs = self._outputs(shaped, statement.text, statement.index)
            hit = sources_for(outputs, fields, self, pending=pending, unknown_relation=unknown_relation)
            if len(self._decided) >= _CACHE:
                self._decided.clear()
            self._decided[key] = hit
        return hit

    def _outputs(self, key: tuple[str, int], text: str, index: int) -> list[Output] | None:
        cache = self._cache
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        node = statement_node(text, index)
        try:
            result = None if node is None else self._statement(node, None)
        except RecursionError:  # nested beyond what can be followed: fail closed
            result = None
        except Exception:  # a tree this walker does not expect: fail closed, and say so
            log.exception("masking lineage could not follow a statement; its columns are masked whole")
            result = None
        cache[key] = result
        if len(cache) > _CACHE:
            cache.popitem(last=False)
        return result

    def created_relations(self, text: str) -> list[Relation] | None:
        """The relations the statements of ``text`` create (tables with their columns, CREATE TABLE AS,
        SELECT INTO and views with their query as definition), for lineage to see them before the catalog
        can (they are not committed yet). None when a statement changes the schema in a way this cannot
        describe (ALTER, DO, CALL, CREATE FUNCTION, ...): lineage through relations is then unknown."""
        try:
            statements = parse_sql(text)
        except Exception:
            return None
        created: list[Relation] = []
        for raw in statements:
            node = raw.stmt if isinstance(raw, ast.RawStmt) else None
            if node is None:
                return None
            if isinstance(node, _HARMLESS_DDL):
                continue
            if isinstance(node, ast.SelectStmt) and node.intoClause is None:
                continue
            try:
                rel = self._created(node, len(created))
            except Exception:
                log.exception("masking lineage could not follow a schema change")
                return None
            if rel is None:
                return None
            created.append(rel)
        return created

    def _created(self, node: ast.Node, n: int) -> Relation | None:
        oid = -(1000 + n)  # no oid yet: one the server never uses
        if isinstance(node, ast.CreateStmt):
            if node.inhRelations or node.partbound is not None or node.ofTypename is not None:
                return None
            if any(not isinstance(e, ast.ColumnDef | ast.Constraint) for e in node.tableElts or ()):
                return None  # LIKE other_table: its columns are the catalog's
            columns = [Attribute(e.colname or "", _type_oid(e.typeName)) for e in node.tableElts or ()
                       if isinstance(e, ast.ColumnDef)]
            return _pending_relation(oid, node.relation, "r", columns, None)
        if isinstance(node, ast.CreateTableAsStmt) and node.query is not None and node.into is not None:
            return self._defined(oid, node.into.rel, "m", node.query, _names(node.into.colNames))
        if isinstance(node, ast.SelectStmt) and node.intoClause is not None:
            into, node.intoClause = node.intoClause, None  # the query without INTO (a tree parsed for this)
            return self._defined(oid, into.rel, "m", node, _names(into.colNames))
        if isinstance(node, ast.ViewStmt) and node.query is not None:
            return self._defined(oid, node.view, "v", node.query, _names(node.aliases))
        return None

    def _defined(self, oid: int, rv: ast.RangeVar | None, kind: str, query: ast.Node,
                 names: list[str]) -> Relation | None:
        outputs = self._statement(query, None)
        if outputs is None or any(isinstance(o, Spread) for o in outputs):
            return None
        named = names + [o.name or "" for o in outputs[len(names):] if isinstance(o, Col)]
        if "" in named or len(named) != len(outputs):
            return None
        try:
            definition = RawStream()(query)
        except Exception:
            return None
        return _pending_relation(oid, rv, kind, [Attribute(n, 0) for n in named], definition)

    def touches(self, text: str, index: int = 0) -> bool:
        """Whether the statement reads a covered column anywhere (a WHERE clause, a cast that fails...),
        or something the proxy cannot see into: what an error message quotes may then be such a value."""
        key = (text, index)
        hit = self._touches.get(key)
        if hit is None:
            node = statement_node(text, index)
            try:
                hit = node is None or any(self._touching(n) for n in _walk(node))
            except Exception:
                hit = True  # fail closed: redact what the error quotes
            if len(self._touches) >= _CACHE:
                self._touches.clear()
            self._touches[key] = hit
        return hit

    def _touching(self, node: ast.Node) -> bool:
        if isinstance(node, ast.DoStmt | ast.CallStmt):  # code the proxy cannot see into
            return True
        if isinstance(node, ast.ColumnRef):
            return any(self.rule_for(name) is not None for name in _names(node.fields) if name != "*")
        if isinstance(node, ast.RangeVar) and node.relname:
            rels = self._named(node.schemaname, node.relname)
            return not rels or any(not o.flow.clean for r in rels for o in self._relation_columns(r))
        if isinstance(node, ast.FuncCall):
            parts = _names(node.funcname)
            return not self._builtin(parts[-2] if len(parts) > 1 else None, parts[-1]) or parts[-1] in READS_DATA
        return False

    def copy_outputs(self, node: ast.CopyStmt) -> tuple[list[Output] | None, tuple[int, ...] | None]:
        """A COPY TO's fields: their outputs, and their type oids when COPY names a relation."""
        if node.query is not None:
            outputs = self._statement(node.query, None)
            types = tuple(o.type_oid if isinstance(o, Col) else 0 for o in outputs or ())
            return outputs, types if outputs and all(isinstance(o, Col) for o in outputs) else None
        if node.relation is None:
            return None, None
        rels = self._named(node.relation.schemaname, node.relation.relname or "")
        if len(rels) != 1:
            return None, None
        rel = rels[0]
        cols = list(zip(self._relation_columns(rel), rel.columns, strict=True))
        if node.attlist:
            wanted = [s.sval for s in node.attlist]
            by_name = {a.name: (o, a) for o, a in cols}
            if any(n not in by_name for n in wanted):
                return None, None
            cols = [by_name[n] for n in wanted]
        else:
            cols = [(o, a) for o, a in cols if not a.generated]  # COPY TO leaves generated columns out
        return [o for o, _ in cols], tuple(a.type_oid for _, a in cols)

    def attribute_flow(self, table_oid: int, attnum: int) -> Flow | None:
        """What RowDescription's (table oid, attnum) says a field is; None when the catalog does not know
        the relation."""
        rel = self.catalog.by_oid(table_oid) if self.catalog is not None else None
        if rel is None:
            return None
        outputs = self._relation_columns(rel)
        if attnum == 0:  # a whole-row reference
            return derive(o.flow for o in outputs)
        if rel.attribute(attnum) is None:
            return UNKNOWN
        position = sum(1 for a in rel.attributes[: attnum - 1] if a is not None)
        out = outputs[position] if position < len(outputs) else None
        return out.flow if out is not None else UNKNOWN

    # ------------------------------------------------------------ statements

    def _statement(self, node: ast.Node | None, parent: _Scope | None) -> list[Output] | None:
        if isinstance(node, ast.SelectStmt):
            return [] if node.intoClause is not None else self._select(node, parent)
        if isinstance(node, ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt | ast.MergeStmt):
            return [] if node.returningClause is None else self._dml(node, parent)
        if isinstance(node, ast.ExplainStmt):
            return [Col("QUERY PLAN", CLEAN)]
        if isinstance(node, ast.VariableShowStmt):
            return [Spread(CLEAN)]
        return None  # EXECUTE, FETCH, CALL, ...: the rows come from somewhere the text does not show

    def _select(self, node: ast.SelectStmt, parent: _Scope | None) -> list[Output]:
        scope = _Scope(parent)
        if node.withClause is not None:
            self._with(node.withClause, scope)
        if node.op != SetOperation.SETOP_NONE:
            assert node.larg is not None and node.rarg is not None
            return _set_operation(self._select(node.larg, scope), self._select(node.rarg, scope))
        if node.valuesLists:
            rows = [[self._expr(v, scope) for v in row] for row in node.valuesLists]
            width = len(rows[0])
            if any(len(r) != width for r in rows):
                return [Spread(UNKNOWN)]
            return [Col(f"column{i + 1}", merge(r[i] for r in rows)) for i in range(width)]
        for item in node.fromClause or ():
            self._from(item, scope, top=True)
        outputs: list[Output] = []
        for target in node.targetList or ():
            outputs.extend(self._target(target, scope))
        return outputs

    def _with(self, clause: ast.WithClause, scope: _Scope) -> None:
        for cte in clause.ctes or ():
            assert isinstance(cte, ast.CommonTableExpr)
            names = [s.sval for s in cte.aliascolnames or ()]
            name = cte.ctename or ""
            inner = _Scope(scope.parent, scope.ctes)
            if clause.recursive:
                outputs = self._recursive_cte(cte, names, inner)
            else:
                outputs = self._statement(cte.ctequery, inner) or [Spread(UNKNOWN)]
            scope.ctes[name] = _rename(outputs, names)

    def _recursive_cte(self, cte: ast.CommonTableExpr, names: list[str], inner: _Scope) -> list[Output]:
        """Iterate the CTE's lineage from "its self-references are clean" until it stops growing."""
        guess: list[Output] = [Col(n, CLEAN) for n in names] or [Spread(CLEAN)]
        for _ in range(_MAX_FIXPOINT):
            inner.ctes[cte.ctename or ""] = guess
            outputs = _rename(self._statement(cte.ctequery, inner) or [Spread(UNKNOWN)], names)
            if outputs == guess:
                return outputs
            guess = outputs
        return [Spread(UNKNOWN)]

    def _dml(self, node: ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt | ast.MergeStmt,
             parent: _Scope | None) -> list[Output]:
        """RETURNING: the target's columns hold what they held or anything the statement wrote."""
        scope = _Scope(parent)
        if node.withClause is not None:
            self._with(node.withClause, scope)
        written: list[Flow] = []
        if isinstance(node, ast.InsertStmt):
            if node.selectStmt is not None:
                written += [o.flow for o in self._statement(node.selectStmt, scope) or [Spread(UNKNOWN)]]
        elif isinstance(node, ast.MergeStmt):
            if node.sourceRelation is not None:
                self._from(node.sourceRelation, scope, top=True)
        else:
            extra = node.fromClause if isinstance(node, ast.UpdateStmt) else node.usingClause
            for item in extra or ():
                self._from(item, scope, top=True)
        target = self._relation_item(node.relation, scope)
        scope.items.append(target)
        if isinstance(node, ast.InsertStmt) and node.onConflictClause is not None:
            scope.items.append(_Columns("excluded", target.expand()))
            written += [self._expr(t, scope) for t in node.onConflictClause.targetList or ()]
        elif isinstance(node, ast.UpdateStmt):
            written += [self._expr(t, scope) for t in node.targetList or ()]
        elif isinstance(node, ast.MergeStmt):
            for when in node.mergeWhenClauses or ():
                written += [self._expr(t, scope) for t in (when.targetList or ()) + (when.values or ())]
        if written:
            old = target
            target = _with_written(target, merge(written))
            scope.items = [target if i is old else i for i in scope.items]
        scope.top.insert(0, target)
        returning = node.returningClause
        assert returning is not None
        aliases = {"old", "new"} | {o.value for o in returning.options or () if getattr(o, "value", None)}
        scope.items += [_Columns(a, target.expand()) for a in sorted(aliases)]
        outputs: list[Output] = []
        for expr in returning.exprs or ():
            outputs.extend(self._target(expr, scope))
        return outputs

    # ------------------------------------------------------------ FROM

    def _from(self, node: ast.Node | None, scope: _Scope, *, top: bool) -> _Item:
        item: _Item
        if node is None:
            item = _Opaque(None, UNKNOWN)
        elif isinstance(node, ast.RangeVar):
            item = self._relation_item(node, scope)
        elif isinstance(node, ast.RangeSubselect):
            outputs = self._statement(node.subquery, scope) or [Spread(UNKNOWN)]
            item = _Columns(_alias(node.alias), _rename(outputs, _colnames(node.alias)))
        elif isinstance(node, ast.RangeFunction):
            item = self._function_item(node, scope)
        elif isinstance(node, ast.JoinExpr):
            left = self._from(node.larg, scope, top=False)
            right = self._from(node.rarg, scope, top=False)
            using = [s.sval for s in node.usingClause] if node.usingClause else None
            join: _Item = _Join(None, left, right, using, bool(node.isNatural))
            if node.alias is not None:
                join = _Columns(node.alias.aliasname, _rename(join.expand(), _colnames(node.alias)))
            item = join
        elif isinstance(node, ast.RangeTableSample):
            item = self._from(node.relation, scope, top=False)
        elif isinstance(node, ast.RangeTableFunc):  # XMLTABLE
            flow = derive(self._expr(c, scope) for c in _children(node) if not isinstance(c, ast.Alias))
            cols: list[Output] = [Col(c.colname, flow) for c in node.columns or ()]
            item = _Columns(_alias(node.alias), _rename(cols, _colnames(node.alias)))
        else:  # JSON_TABLE and anything newer: its columns carry what its inputs carry
            flow = derive(self._expr(c, scope) for c in _children(node) if not isinstance(c, ast.Alias))
            item = _Opaque(_alias(getattr(node, "alias", None)), flow)
        scope.items.append(item)
        if top:
            scope.top.append(item)
        return item

    def _relation_item(self, rv: ast.RangeVar | None, scope: _Scope) -> _Item:
        if rv is None or rv.relname is None:
            return _Opaque(None, UNKNOWN)
        refname = rv.alias.aliasname if rv.alias is not None else rv.relname
        colnames = _colnames(rv.alias)
        if rv.schemaname is None and rv.relname in scope.ctes:
            return _Columns(refname, _rename(scope.ctes[rv.relname], colnames))
        rels = self._named(rv.schemaname, rv.relname)
        if not rels:
            return _Opaque(refname, UNKNOWN)
        lists = [self._relation_columns(r) for r in rels]
        first = lists[0]
        if all(len(cols) == len(first) and all(_name(a) == _name(b) for a, b in zip(cols, first, strict=True))
               for cols in lists):
            merged: list[Output] = [
                Col(_name(o), merge(cols[i].flow for cols in lists), _same_type(cols[i] for cols in lists))
                for i, o in enumerate(first)
            ]
            return _Columns(refname, _rename(merged, colnames))
        return _Opaque(refname, merge(o.flow for cols in lists for o in cols))

    def _named(self, schema: str | None, name: str) -> tuple[Relation, ...]:
        return self.catalog.named(schema, name) if self.catalog is not None else ()

    def _relation_columns(self, rel: Relation) -> list[Output]:
        """A relation's columns: a table's by rule; a view's by its definition's lineage."""
        known = self._relations.get(rel.oid)
        if known is not None:
            return known
        cols: list[Output]
        if rel.system:
            flow = UNKNOWN if rel.name in DATA_EXPOSING else CLEAN
            cols = [Col(a.name, flow, a.type_oid) for a in rel.columns]
        elif rel.kind in DEFINED_KINDS:
            cols = self._defined_columns(rel)
        else:
            cols = [Col(a.name, self._base(a.name), a.type_oid) for a in rel.columns]
        self._relations[rel.oid] = cols
        return cols

    def _defined_columns(self, rel: Relation) -> list[Output]:
        names = [a.name for a in rel.columns]
        types = [a.type_oid for a in rel.columns]
        if rel.definition is None or rel.oid in self._defining or self._depth >= _MAX_DEPTH:
            return [Col(n, UNKNOWN, t) for n, t in zip(names, types, strict=True)]
        self._defining.add(rel.oid)
        self._depth += 1
        try:
            node = statement_node(rel.definition, 0)
            outputs = self._statement(node, None) if node is not None else None
        finally:
            self._depth -= 1
            self._defining.discard(rel.oid)
        flows = align(outputs, len(names))
        # A view's column is a column too: named like a rule, it is covered whatever it reads.
        return [Col(n, merge([f, self._base(n)]), t) for n, f, t in zip(names, flows, types, strict=True)]

    def _base(self, name: str) -> Flow:
        return Flow(frozenset({name}), direct=True) if self.rule_for(name) is not None else CLEAN

    def _function_item(self, node: ast.RangeFunction, scope: _Scope) -> _Item:
        flows: list[Flow] = []
        names: list[str] = []
        for entry in node.functions or ():
            call, coldefs = entry[0], entry[1] if len(entry) > 1 else None
            flows.append(self._expr(call, scope))
            names += [c.colname for c in coldefs or ()]
        flow = derive(flows)
        refname = _alias(node.alias)
        if refname is None and len(node.functions or ()) == 1:
            call = (node.functions or ((None,),))[0][0]
            if isinstance(call, ast.FuncCall):
                refname = _names(call.funcname)[-1]
        colnames = _colnames(node.alias) or names
        if names and not node.ordinality:
            return _Columns(refname, _rename([Col(n, flow) for n in names], colnames))
        return _Opaque(refname, flow)

    # ------------------------------------------------------------ targets and column references

    def _target(self, target: ast.Node, scope: _Scope) -> list[Output]:
        if not isinstance(target, ast.ResTarget):
            return [Col(None, self._expr(target, scope))]
        value = target.val
        if value is None:
            return [Col(target.name, UNKNOWN)]
        if isinstance(value, ast.ColumnRef) and _names(value.fields)[-1:] == ["*"]:
            return self._star(_names(value.fields)[:-1], scope)
        if isinstance(value, ast.A_Indirection) and _names(value.indirection)[-1:] == ["*"]:
            inner = value.arg
            if isinstance(inner, ast.ColumnRef) and len(value.indirection or ()) == 1:
                expanded = self._star(_names(inner.fields), scope, records=True)
                if expanded is not None:
                    return expanded
            return [Spread(derive([self._expr(value, scope)]))]
        type_oid = 0
        reference = value.arg if isinstance(value, ast.CollateClause) else value
        if isinstance(reference, ast.ColumnRef):  # passed on unchanged: the column's own type
            type_oid = self._column_type(_names(reference.fields), scope)
        return [Col(target.name or _figure_name(value), self._expr(value, scope), type_oid)]

    def _column_type(self, fields: list[str], scope: _Scope) -> int:
        """The type of a plain column reference when only one column can be meant (0: not known)."""
        name = fields[-1]
        level: _Scope | None = scope
        while level is not None:
            items = level.items if len(fields) == 1 else [i for i in level.items if i.refname == fields[-2]]
            types = [t for i in items if not isinstance(i, _Join) and (t := i.type_of(name)) is not None]
            if types:
                return types[0] if len(set(types)) == 1 else 0
            level = level.parent
        return 0

    def _star(self, prefix: list[str], scope: _Scope, records: bool = False) -> list[Output]:
        if not prefix:
            return [o for item in scope.top for o in item.expand()]
        name = prefix[-1]
        level: _Scope | None = scope
        while level is not None:
            items = [i for i in level.items if i.refname == name]
            if items:
                return _one_of([i.expand() for i in items])
            level = level.parent
        if records:  # (column).* of a composite column
            return [Spread(derive([self._column(prefix, scope)]))]
        return [Spread(UNKNOWN)]

    def _column(self, fields: list[str], scope: _Scope) -> Flow:
        if len(fields) == 1:
            name = fields[0]
            level: _Scope | None = scope
            while level is not None:
                found = [f for i in level.items if (f := i.column(name)) is not None]
                rows = [i.whole() for i in level.items if i.refname == name]
                if found or rows:
                    return merge(found + [derive([r]) for r in rows])
                level = level.parent
            return UNKNOWN
        relation, column = fields[-2], fields[-1]
        level = scope
        while level is not None:
            items = [i for i in level.items if i.refname == relation]
            if items:
                if column == "*":
                    return derive(i.whole() for i in items)
                found = [f for i in items if (f := i.column(column)) is not None]
                return merge(found) if found else UNKNOWN
            level = level.parent
        # Not a relation: a composite column and a field of it ("a.b" means that when no relation is "a").
        return derive([self._column(fields[:1], scope)])

    # ------------------------------------------------------------ expressions

    def _expr(self, node: ast.Node | None, scope: _Scope) -> Flow:
        if node is None:
            return CLEAN
        if isinstance(node, ast.ColumnRef):
            return self._column(_names(node.fields), scope)
        if isinstance(node, _CONSTANTS):
            return CLEAN
        if isinstance(node, ast.FuncCall):
            return self._function(node, scope)
        if isinstance(node, ast.A_Expr):
            return self._operator(node, scope)
        if isinstance(node, ast.BoolExpr):
            args = [self._expr(a, scope) for a in node.args or ()]
            verdict = Verdict.BOOLEAN if all(a.verdict is Verdict.BOOLEAN or a.clean for a in args) else None
            return judged(derive(args), verdict)
        if isinstance(node, ast.NullTest | ast.BooleanTest):
            return judged(derive([self._expr(node.arg, scope)]), Verdict.BOOLEAN)
        if isinstance(node, ast.SubLink):
            return self._sublink(node, scope)
        if isinstance(node, ast.CollateClause):  # a collation changes no value
            return self._expr(node.arg, scope)
        if isinstance(node, ast.ResTarget):
            return self._expr(node.val, scope)
        if isinstance(node, ast.SelectStmt):
            return derive(o.flow for o in self._select(node, scope))
        if isinstance(node, ast.WindowDef):  # partitions and orderings select rows; they are not values
            return CLEAN
        return derive(self._expr(c, scope) for c in _children(node))

    def _function(self, node: ast.FuncCall, scope: _Scope) -> Flow:
        parts = _names(node.funcname)
        name, schema = parts[-1], parts[-2] if len(parts) > 1 else None
        if not self._builtin(schema, name) or name in READS_DATA:
            return UNKNOWN  # its body can read anything; the proxy cannot see what it returns
        args = [self._expr(a, scope) for a in node.args or ()]
        if name == "count":
            return judged(derive(args), Verdict.COUNT)
        if name in _LENGTHS and args and (args[0].direct or args[0].clean) and all(a.clean for a in args[1:]):
            return judged(derive(args), Verdict.LENGTH)
        extra = [self._expr(s, scope) for s in node.agg_order or ()]
        if node.agg_filter is not None:
            extra.append(self._expr(node.agg_filter, scope))
        return derive(args + extra)

    def _builtin(self, schema: str | None, name: str) -> bool:
        if schema not in (None, "pg_catalog") or name not in BUILTIN_FUNCTIONS:
            return False
        if schema == "pg_catalog":
            return True
        return self.catalog is not None and not self.catalog.shadows(name)

    def _operator(self, node: ast.A_Expr, scope: _Scope) -> Flow:
        right = node.rexpr if isinstance(node.rexpr, tuple) else (node.rexpr,)  # IN (a, b): a list
        flow = derive([self._expr(node.lexpr, scope), *(self._expr(r, scope) for r in right)])
        kind = node.kind
        if kind in _PREDICATE_KINDS:
            return judged(flow, Verdict.BOOLEAN)
        if kind == A_Expr_Kind.AEXPR_OP and _names(node.name)[-1:] and _names(node.name)[-1] in _COMPARISONS:
            return judged(flow, Verdict.BOOLEAN)
        return flow

    def _sublink(self, node: ast.SubLink, scope: _Scope) -> Flow:
        kind = node.subLinkType
        if kind == SubLinkType.EXISTS_SUBLINK:
            return judged(CLEAN, Verdict.BOOLEAN)
        outputs = self._statement(node.subselect, scope) or [Spread(UNKNOWN)]
        flows = [o.flow for o in outputs]
        if kind == SubLinkType.EXPR_SUBLINK:
            return merge(flows)  # the subquery's one value, unchanged
        test = self._expr(node.testexpr, scope)
        if kind in (SubLinkType.ANY_SUBLINK, SubLinkType.ALL_SUBLINK, SubLinkType.ROWCOMPARE_SUBLINK):
            return judged(derive([*flows, test]), Verdict.BOOLEAN)
        return derive([*flows, test])


# ------------------------------------------------------------------------------------------------ decisions


def shape(text: str) -> str:
    """The statement text with its literal values replaced by ``$n`` (libpg_query's normalize): lineage
    never depends on a literal's value, so statements that differ only in literals (``OFFSET 17``) share
    one analysis. Aliases, names and structure are kept as written."""
    if len(text) > _MAX_SHAPED:
        return text
    try:
        return str(normalize(text))
    except Exception:  # the parser's C layer refuses it: the text is its own shape
        return text


def statement_node(text: str, index: int) -> ast.Node | None:
    """Statement ``index`` of ``text`` as pglast parses it, or None."""
    try:
        statements = parse_sql(text)
    except (ParseError, RecursionError):
        return None
    except Exception:  # the parser's C layer can raise other errors on hostile input
        return None
    if index >= len(statements):
        return None
    raw = statements[index]
    return raw.stmt if isinstance(raw, ast.RawStmt) else None


# ------------------------------------------------------------------------------------------------ helpers

_CONSTANTS = (ast.A_Const, ast.ParamRef, ast.SQLValueFunction, ast.String, ast.Integer, ast.Float,
              ast.Boolean, ast.TypeName, ast.SetToDefault, ast.A_Star)


# DDL that changes no relation's columns or definition (an index, a comment, a sequence, a DROP: a
# dropped relation is never read again, and a new one of the same name is found by its own statement).
_HARMLESS_DDL = (ast.IndexStmt, ast.CommentStmt, ast.CreateSeqStmt, ast.DropStmt, ast.TransactionStmt,
                 ast.VariableSetStmt, ast.VariableShowStmt)
_TYPE_OIDS = {"int2": 21, "int4": 23, "int8": 20, "numeric": 1700, "text": 25, "varchar": 1043, "bpchar": 1042,
              "bytea": 17, "json": 114, "jsonb": 3802, "bool": 16, "float4": 700, "float8": 701}


def _type_oid(name: ast.TypeName | None) -> int:
    """A column type written in CREATE TABLE, when it is one the masker reads (0: any other)."""
    if name is None or name.arrayBounds:
        return 0
    return _TYPE_OIDS.get(_names(name.names)[-1], 0)


def _pending_relation(oid: int, rv: ast.RangeVar | None, kind: str, columns: list[Attribute],
                      definition: str | None) -> Relation | None:
    if rv is None or not rv.relname:
        return None
    schema = "pg_temp_" if rv.relpersistence == "t" else rv.schemaname or ""
    return Relation(oid, schema, rv.relname, kind, tuple(columns), definition)


def _with_written(item: _Item, written: Flow) -> _Item:
    if isinstance(item, _Opaque):
        return _Opaque(item.refname, merge([item.flow, written]))
    cols: list[Output] = [
        Col(o.name, merge([o.flow, written]), o.type_oid) if isinstance(o, Col) else Spread(merge([o.flow, written]))
        for o in item.expand()
    ]
    return _Columns(item.refname, cols)


def _set_operation(left: list[Output], right: list[Output]) -> list[Output]:
    if len(left) == len(right) and all(isinstance(o, Col) for o in left + right):
        return [Col(_name(a), merge([a.flow, b.flow]), _same_type([a, b])) for a, b in zip(left, right, strict=True)]
    return [Spread(merge(o.flow for o in left + right))]


def _one_of(expansions: list[list[Output]]) -> list[Output]:
    """Several items answer to one name: their columns position by position when they line up."""
    first = expansions[0]
    if len(expansions) == 1:
        return first
    if all(len(e) == len(first) and all(isinstance(o, Col) for o in e) for e in expansions):
        return [Col(_name(o), merge(e[i].flow for e in expansions), _same_type(e[i] for e in expansions))
                for i, o in enumerate(first)]
    return [Spread(merge(o.flow for e in expansions for o in e))]


def _rename(outputs: list[Output], names: list[str]) -> list[Output]:
    """An alias's column list renames the first columns, in order."""
    if not names:
        return outputs
    out: list[Output] = []
    for i, o in enumerate(outputs):
        if isinstance(o, Spread):
            return [*out, Spread(merge(p.flow for p in outputs[i:]))] if i < len(names) else out + outputs[i:]
        out.append(Col(names[i], o.flow, o.type_oid) if i < len(names) else o)
    return out


def _same_type(outputs: Iterable[Output]) -> int:
    types = {o.type_oid if isinstance(o, Col) else 0 for o in outputs}
    return types.pop() if len(types) == 1 else 0


def _name(o: Output) -> str | None:
    return o.name if isinstance(o, Col) else None


def _alias(alias: ast.Alias | None) -> str | None:
    return alias.aliasname if alias is not None else None


def _colnames(alias: ast.Alias | None) -> list[str]:
    return [s.sval for s in alias.colnames or ()] if alias is not None else []


def _names(nodes: tuple[ast.Node, ...] | None) -> list[str]:
    """Names of a dotted reference (``*`` for A_Star and anything that is not a name)."""
    return [n.sval if isinstance(n, ast.String) and n.sval is not None else "*" for n in nodes or ()]


def _walk(node: ast.Node) -> Iterable[ast.Node]:
    """Every node of a tree, depth first."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(_children(current))


def _children(node: ast.Node) -> Iterable[ast.Node]:
    slots: dict[str, object] = getattr(type(node), "__slots__", {})
    for attr in slots:
        value = getattr(node, attr, None)
        if isinstance(value, ast.Node):
            yield value
        elif isinstance(value, tuple):
            for v in value:
                if isinstance(v, ast.Node):
                    yield v
                elif isinstance(v, tuple):  # lists of lists (VALUES rows, ROWS FROM entries)
                    yield from (w for w in v if isinstance(w, ast.Node))


def _figure_name(node: ast.Node) -> str | None:
    """The column name PostgreSQL gives an unaliased output (FigureColname); None where unsure."""
    if isinstance(node, ast.ColumnRef):
        last = _names(node.fields)[-1:]
        return last[0] if last and last[0] != "*" else None
    if isinstance(node, ast.FuncCall):
        return _names(node.funcname)[-1]
    if isinstance(node, ast.TypeCast):
        inner = _figure_name(node.arg) if node.arg is not None else None
        if inner not in (None, "?column?"):
            return inner
        names = _names(node.typeName.names) if node.typeName is not None else []
        return names[-1] if names else None
    if isinstance(node, ast.CollateClause):
        return _figure_name(node.arg) if node.arg is not None else None
    if isinstance(node, ast.A_Indirection):
        last = _names(node.indirection)[-1:]
        if last and last[0] != "*":
            return last[0]
        return _figure_name(node.arg) if node.arg is not None else None
    if isinstance(node, ast.A_Expr):
        return "nullif" if node.kind == A_Expr_Kind.AEXPR_NULLIF else "?column?"
    if isinstance(node, ast.A_ArrayExpr):
        return "array"
    if isinstance(node, ast.RowExpr):
        return "row"
    if isinstance(node, ast.CoalesceExpr):
        return "coalesce"
    if isinstance(node, ast.MinMaxExpr):
        return "greatest" if node.op == MinMaxOp.IS_GREATEST else "least"
    if isinstance(node, ast.SubLink):
        if node.subLinkType == SubLinkType.EXISTS_SUBLINK:
            return "exists"
        if node.subLinkType == SubLinkType.ARRAY_SUBLINK:
            return "array"
        return None
    if isinstance(node, ast.BoolExpr | ast.NullTest | ast.BooleanTest | ast.ParamRef):
        return "?column?"
    if isinstance(node, ast.A_Const) and not isinstance(node.val, ast.Boolean):
        return "?column?"
    return None


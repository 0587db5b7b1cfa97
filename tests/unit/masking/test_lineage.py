"""Lineage, sans-I/O: which result columns a column rule covers, for statements of every shape."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.masking.rules import MaskAction
from shared.pg.masking.catalog import Attribute, Catalog, Relation, catalog_of
from shared.pg.masking.coverage import (
    CLEAN,
    LINEAGE_UNKNOWN,
    UNKNOWN,
    Col,
    ColumnSource,
    Flow,
    Spread,
    align,
    sources_for,
)
from shared.pg.masking.lineage import LineageAnalyzer, shape
from shared.pg.wire.messages import Field

TEXT, INT8, INT4, BOOL, JSON = 25, 20, 23, 16, 114
RULES = {"ssn": MaskAction.REDACT, "card_number": MaskAction.PARTIAL, "secret_off": MaskAction.OFF}


def rule_for(name: str) -> MaskAction | None:
    action = RULES.get(name)
    return None if action is MaskAction.OFF else action


def relation(oid: int, name: str, columns: list[str], kind: str = "r", definition: str | None = None,
             schema: str = "public") -> Relation:
    return Relation(oid, schema, name, kind, tuple(Attribute(c, TEXT) for c in columns), definition)


CATALOG = catalog_of([
    relation(1, "customers", ["id", "name", "email", "ssn", "card_number", "created_at"]),
    relation(2, "orders", ["id", "customer_id", "amount", "status"]),
    relation(3, "renamed", ["id", "x"], "v", " SELECT customers.id, customers.ssn AS x FROM customers;"),
    relation(4, "nested", ["z"], "v", " SELECT renamed.x AS z FROM renamed;"),
    # The proxy reads view definitions with an empty search_path: every relation comes schema-qualified.
    relation(5, "clean_view", ["id", "status"], "v", " SELECT orders.id, orders.status FROM public.orders;"),
    relation(6, "pg_class", ["oid", "relname"], schema="pg_catalog"),
    relation(7, "pg_stats", ["attname", "most_common_vals"], schema="pg_catalog"),
    relation(8, "orders", ["id", "ssn"], schema="other"),  # another schema's "orders": any may be meant
    relation(9, "dropped", ["id"]),
], functions=["my_helper"])


def analyzer(catalog: Catalog | None = CATALOG) -> LineageAnalyzer:
    return LineageAnalyzer(catalog, rule_for)


def decisions(sql: str, types: list[int] | None = None, *, catalog: Catalog | None = CATALOG) -> list[str]:
    """One word per output column: "clean", "rule:<action>", "whole", "unknown"."""
    a = analyzer(catalog)
    outputs = a.outputs(sql)
    types = types if types is not None else [TEXT] * len(outputs or ())
    names = [o.name if isinstance(o, Col) and o.name else f"c{i}" for i, o in enumerate(outputs or ())]
    names += [f"c{i}" for i in range(len(names), len(types))]
    fields = [Field(n, 0, 0, t, -1, -1, 0) for n, t in zip(names, types, strict=False)]
    return [_word(s) for s in sources_for(outputs, fields, a)]


def _word(source: ColumnSource | None) -> str:
    if source is None:
        return "clean"
    if source.counted == LINEAGE_UNKNOWN:
        return "unknown"
    return "whole" if source.whole else f"rule:{source.action.value}"


CASES: list[tuple[str, list[int] | None, list[str]]] = [
    # The attacks.
    ("SELECT reverse(card_number), encode(convert_to(card_number, 'UTF8'), 'base64') FROM customers", None,
     ["whole", "whole"]),
    ("SELECT translate(card_number, '0123456789', 'abcdefghij'), substr(card_number, 1, 8), substr(card_number, 9)"
     " FROM customers", None, ["whole"] * 3),
    ("SELECT replace(ssn, '-', '/') FROM customers", None, ["whole"]),
    # Aliasing: the rule of the source column, whatever the result is called.
    ("SELECT ssn AS x, card_number AS y, name AS ssn FROM customers", None,
     ["rule:redact", "rule:partial", "rule:redact"]),
    ("SELECT c.ssn, c.name FROM customers c", None, ["rule:redact", "clean"]),
    # Whole rows.
    ("SELECT row_to_json(c), to_jsonb(c), c::text, c, ROW(c.*), json_agg(c) OVER () FROM customers c", None,
     ["whole"] * 6),
    ("SELECT row_to_json(o) FROM orders o", None, ["whole"]),  # "orders" may be other.orders, with an ssn
    ("SELECT row_to_json(o) FROM public.orders o", None, ["clean"]),
    ("SELECT c.* FROM customers c", None, ["clean", "clean", "clean", "rule:redact", "rule:partial", "clean"]),
    ("SELECT * FROM public.orders", None, ["clean"] * 4),
    # Reveal-nothing forms, checked against the type the server reports.
    ("SELECT count(*), count(ssn), length(ssn), ssn IS NULL, ssn = 'x', card_number LIKE '4%' FROM customers",
     [INT8, INT8, INT4, BOOL, BOOL, BOOL], ["clean"] * 6),
    ("SELECT ssn = 'x' FROM customers", [TEXT], ["whole"]),  # an "=" that does not return bool is not trusted
    ("SELECT length(upper(ssn)), count(ssn) + 1, (ssn IS NULL)::int FROM customers", [INT4, INT8, INT4],
     ["whole"] * 3),
    ("SELECT EXISTS (SELECT ssn FROM customers), ssn IN ('a', 'b') FROM customers", [BOOL, BOOL], ["clean"] * 2),
    # Subqueries, CTEs, set operations, LATERAL, functions in FROM.
    ("SELECT s.y FROM (SELECT ssn AS y, name FROM customers) s", None, ["rule:redact"]),
    ("WITH w AS (SELECT card_number AS k FROM customers) SELECT k, upper(k) FROM w", None,
     ["rule:partial", "whole"]),
    ("SELECT name FROM customers UNION SELECT ssn FROM customers", None, ["rule:redact"]),
    ("SELECT ssn FROM customers UNION SELECT card_number FROM customers", None, ["whole"]),
    ("SELECT x.q FROM customers, LATERAL (SELECT ssn AS q) x", None, ["rule:redact"]),
    ("SELECT u FROM customers c, unnest(ARRAY[c.ssn]) u", None, ["whole"]),
    ("SELECT g FROM generate_series(1, 10) g", None, ["clean"]),
    ("SELECT (SELECT ssn FROM customers LIMIT 1)", None, ["rule:redact"]),
    ("WITH RECURSIVE r(n, s) AS (SELECT 1, ''::text UNION ALL SELECT n + 1, (SELECT ssn FROM customers LIMIT 1) "
     "FROM r WHERE n < 3) SELECT n, s FROM r", None, ["clean", "rule:redact"]),
    ("WITH RECURSIVE r(n, s) AS (SELECT 1, ''::text UNION ALL SELECT n + 1, reverse((SELECT ssn FROM customers "
     "LIMIT 1)) FROM r WHERE n < 3) SELECT n, s FROM r", None, ["clean", "whole"]),
    ("SELECT d FROM customers AS t(a, b, c, d)", None, ["rule:redact"]),
    ("SELECT * FROM customers JOIN public.orders USING (id)", None,
     ["clean", "clean", "clean", "rule:redact", "rule:partial", "clean", "clean", "clean", "clean"]),
    # Views, recursively; system catalogs; statistics that hold column values.
    ("SELECT x FROM renamed", None, ["rule:redact"]),
    ("SELECT z FROM nested", None, ["rule:redact"]),
    ("SELECT * FROM clean_view", None, ["clean", "clean"]),
    ("SELECT relname FROM pg_class", None, ["clean"]),
    ("SELECT most_common_vals FROM pg_stats", None, ["unknown"]),
    # What cannot be traced: fail closed.
    ("SELECT * FROM nosuch", [TEXT, TEXT], ["unknown", "unknown"]),
    ("SELECT my_helper(id) FROM customers", None, ["unknown"]),
    ("SELECT upper(name) FROM customers", None, ["clean"]),
    ("SELECT query_to_xml('select ssn from customers', true, false, '')", None, ["unknown"]),
    ("FETCH ALL FROM c", [TEXT], ["unknown"]),
    ("EXECUTE p", [TEXT], ["unknown"]),
    ("SELEC broken", [TEXT], ["unknown"]),
    # DML RETURNING: what the statement wrote reaches every returned column.
    ("UPDATE orders SET status = (SELECT ssn FROM customers LIMIT 1) RETURNING status", None, ["rule:redact"]),
    ("UPDATE public.orders SET status = (SELECT ssn FROM customers LIMIT 1) RETURNING status, id", None,
     ["rule:redact", "rule:redact"]),
    ("DELETE FROM customers WHERE id = 1 RETURNING ssn AS x, name", None, ["rule:redact", "clean"]),
    ("INSERT INTO public.orders (id) VALUES (1) RETURNING *", None, ["clean"] * 4),
    # Rule "off" is no rule; a rule on the result name alone still applies.
    ("SELECT 'x' AS secret_off, 'y' AS card_number", None, ["clean", "rule:partial"]),
    ("EXPLAIN SELECT ssn FROM customers", [TEXT], ["clean"]),
]


@pytest.mark.parametrize(("sql", "types", "expected"), CASES, ids=[c[0][:60] for c in CASES])
def test_decisions(sql: str, types: list[int] | None, expected: list[str]) -> None:
    assert decisions(sql, types if types is not None else [TEXT] * len(expected)) == expected


def test_without_a_catalog_every_relation_is_unknown() -> None:
    assert decisions("SELECT id, ssn FROM customers", [TEXT, TEXT], catalog=None) == ["unknown", "unknown"]
    assert decisions("SELECT 1 AS a", [INT4], catalog=None) == ["clean"]


def test_rowdescription_origins_name_the_column() -> None:
    """A field RowDescription ties to a relation's column is that column, whatever the text says."""
    a = analyzer()
    fields = [Field("x", 1, 4, TEXT, -1, -1, 0), Field("v", 1, 0, 16388, -1, -1, 0), Field("y", 3, 2, TEXT, -1, -1, 0),
              Field("n", 2, 4, TEXT, -1, -1, 0), Field("gone", 99, 1, TEXT, -1, -1, 0)]
    words = [_word(s) for s in sources_for(None, fields, a)]
    assert words == ["rule:redact", "whole", "rule:redact", "clean", "unknown"]


def test_align_gives_spreads_what_the_others_leave() -> None:
    one, two = Flow(frozenset({"ssn"}), direct=True), Flow(frozenset({"card_number"}))
    assert align([Col("a", one), Spread(CLEAN), Col("b", two)], 5) == [one, CLEAN, CLEAN, CLEAN, two]
    assert align([Col("a", one), Spread(CLEAN), Col("b", two)], 2) == [one, two]
    assert align([Col("a", one), Col("b", two)], 3) == [UNKNOWN] * 3
    between = align([Spread(one), Col("m", CLEAN), Spread(two)], 4)
    assert all(f.sources == {"ssn", "card_number"} for f in between)
    assert align(None, 2) == [UNKNOWN, UNKNOWN]


# ---------------------------------------------------------------- random expressions over a covered column

LEAVES = {"ssn": True, "card_number": True, "name": False, "'k'": False, "42": False}
# (combinator, whether it passes its argument through unchanged)
COMBINE: list[tuple[Callable[[str], str], bool]] = [
    (lambda e: f"upper({e})", False), (lambda e: f"reverse({e})", False), (lambda e: f"({e})::text", False),
    (lambda e: f"substr({e}, 2)", False), (lambda e: f"coalesce({e}, 'z')", False), (lambda e: f"{e} || '-'", False),
    (lambda e: f"format('%s!', {e})", False), (lambda e: f"CASE WHEN id > 1 THEN {e} ELSE 'n' END", False),
    (lambda e: f"ARRAY[{e}]", False), (lambda e: f"ROW({e}, 1)", False),
    (lambda e: f"json_build_object('k', {e})", False),
    (lambda e: f"md5({e}::text)", False), (lambda e: f"lpad({e}::text, 30, '0')", False),
    (lambda e: f"encode(convert_to({e}::text, 'UTF8'), 'base64')", False),
    (lambda e: f"string_agg({e}::text, ',') OVER ()", False), (lambda e: f"greatest({e}::text, name)", False),
    (lambda e: f"(SELECT {e})", True), (lambda e: f"{e} COLLATE \"C\"", True),
]
PAIRS: list[Callable[[str, str], str]] = [
    lambda a, b: f"concat({a}, {b})", lambda a, b: f"{a}::text || {b}::text",
    lambda a, b: f"CASE WHEN {a}::text = 'x' THEN {b}::text END", lambda a, b: f"jsonb_build_array({a}, {b})",
]
WRAPS: list[Callable[[str], str]] = [
    lambda e: f"SELECT {e} AS v FROM customers",
    lambda e: f"SELECT v FROM (SELECT {e} AS v, id FROM customers) s",
    lambda e: f"WITH w AS (SELECT {e} AS v FROM customers) SELECT v FROM w",
    lambda e: f"SELECT l.v FROM customers c, LATERAL (SELECT {e} AS v FROM customers) l",
    lambda e: f"SELECT v FROM renamed r, LATERAL (SELECT {e} AS v FROM customers) l",
]


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> tuple[str, bool, bool]:
    """(SQL expression, whether it reads a covered column, whether it is that column unchanged)."""
    if depth >= 3 or draw(st.booleans()):
        leaf = draw(st.sampled_from(sorted(LEAVES)))
        return leaf, LEAVES[leaf], LEAVES[leaf]
    if draw(st.booleans()):
        inner, covered, direct = draw(expressions(depth + 1))
        combine, identity = draw(st.sampled_from(COMBINE))
        return combine(inner), covered, direct and identity
    (a, ca, _), (b, cb, _) = draw(expressions(depth + 1)), draw(expressions(depth + 1))
    return draw(st.sampled_from(PAIRS))(a, b), ca or cb, False


@given(expressions(), st.sampled_from(WRAPS))
@settings(max_examples=400, deadline=None)
def test_random_expressions_over_a_covered_column_are_masked(expression: tuple[str, bool, bool],
                                                             wrap: Callable[[str], str]) -> None:
    sql, covered, direct = expression
    [word] = decisions(wrap(sql), [TEXT])
    if not covered:
        assert word == "clean", wrap(sql)
    else:
        assert word.startswith("rule:") if direct else word == "whole", wrap(sql)


REVEAL_NOTHING = [
    (lambda e: f"count({e})", INT8), (lambda e: f"({e}) IS NULL", BOOL), (lambda e: f"({e})::text = 'x'", BOOL),
    (lambda e: f"({e})::text LIKE 'a%'", BOOL), (lambda e: f"({e})::text IN ('a', 'b')", BOOL),
    (lambda e: f"({e}) IS NOT DISTINCT FROM ({e})", BOOL),
]


@given(expressions(), st.sampled_from(REVEAL_NOTHING))
@settings(max_examples=200, deadline=None)
def test_reveal_nothing_forms_are_not_masked(expression: tuple[str, bool, bool],
                                             form: tuple[Callable[[str], str], int]) -> None:
    make, type_oid = form
    sql = f"SELECT {make(expression[0])} AS v FROM customers"
    assert decisions(sql, [type_oid]) == ["clean"], sql
    assert decisions(sql, [TEXT]) == (["whole"] if expression[1] else ["clean"]), "the type must be the form's"


def test_relations_a_transaction_makes_are_seen_before_the_catalog_can() -> None:
    a = analyzer()
    created = a.created_relations(
        "CREATE TEMP TABLE t (x int, y text); CREATE TABLE s AS SELECT ssn AS k, name FROM customers; "
        "CREATE VIEW v (a) AS SELECT reverse(card_number), id FROM customers; SELECT ssn AS z INTO w FROM customers;"
        "CREATE INDEX ON t (x); DROP TABLE IF EXISTS gone"
    )
    assert created is not None
    assert [(r.name, [c.name for c in r.columns]) for r in created] == [
        ("t", ["x", "y"]), ("s", ["k", "name"]), ("v", ["a", "id"]), ("w", ["z"])
    ]
    overlay = LineageAnalyzer(catalog_of([*CATALOG.relations, *created], CATALOG.functions), rule_for)
    outputs = overlay.outputs("SELECT t.y, s.k, v.a, w.z, s.name FROM t, s, v, w")
    assert outputs is not None
    fields = [Field(f"c{i}", 0, 0, TEXT, -1, -1, 0) for i in range(5)]
    assert [_word(x) for x in sources_for(outputs, fields, overlay)] == [
        "clean", "rule:redact", "whole", "rule:redact", "clean"
    ]
    for ddl in (
        "ALTER TABLE customers RENAME COLUMN ssn TO x", "DO $$ BEGIN END $$", "CREATE TABLE l (LIKE customers)",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "CREATE TABLE p PARTITION OF q FOR VALUES IN (1)",
    ):
        assert a.created_relations(ddl) is None, ddl


def test_statements_differing_only_in_literals_share_one_analysis() -> None:
    a = analyzer()
    assert shape("SELECT * FROM customers LIMIT 1000 OFFSET 17") == shape("SELECT * FROM customers LIMIT 5 OFFSET 9")
    first, second = "SELECT ssn AS x FROM customers WHERE id = 1", "SELECT ssn AS x FROM customers WHERE id = 2"
    assert a.outputs(first) is a.outputs(second)
    aliases = ("SELECT x FROM (SELECT ssn AS x, name AS y FROM customers) s",
               "SELECT x FROM (SELECT ssn AS y, name AS x FROM customers) s")
    assert shape(aliases[0]) != shape(aliases[1]), "names are kept: only literal values are replaced"
    assert [decisions(sql) for sql in aliases] == [["rule:redact"], ["clean"]]
    assert decisions("SELECT 'abc' AS card_number, ssn AS y FROM customers") == ["rule:partial", "rule:redact"]


def test_a_column_passed_on_unchanged_keeps_its_type() -> None:
    """COPY has no RowDescription: a relation's column passed through keeps the catalog's type for it."""
    typed = catalog_of([Relation(1, "public", "t", "r", (Attribute("n", INT8), Attribute("j", JSON)))])
    a = LineageAnalyzer(typed, rule_for)
    outputs = a.outputs("SELECT n, x.j, n + 1 AS m FROM (SELECT * FROM t) x UNION ALL SELECT n, j, 1 FROM t")
    assert outputs is not None and [o.type_oid for o in outputs if isinstance(o, Col)] == [INT8, JSON, 0]

"""Every effect of a statement is judged: allow-lists mean what they say, read-only is a real guarantee."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.guard.verdict import STRICTNESS, Action, Match
from shared.pg.sql import GuardrailEngine, GuardrailsPolicy, StatementKind, classify
from shared.policy import parse_policy

K = StatementKind


def engine(rules: list[dict[str, Any]], **policy: Any) -> GuardrailEngine:
    return GuardrailEngine(GuardrailsPolicy.model_validate({"rules": rules, **policy}))


def action(e: GuardrailEngine, sql: str) -> Action:
    (decision,) = e.judge(sql)
    return decision.action


SELECT_ONLY = engine([{"name": "reads", "match": {"kinds": ["select"]}, "action": "allow"}], default="deny")


@pytest.mark.parametrize(
    "sql",
    [
        "WITH d AS (DELETE FROM t WHERE id = 1 RETURNING *) SELECT * FROM d",
        "SELECT pg_terminate_backend(1)",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "WITH i AS (INSERT INTO u VALUES (1) RETURNING id) SELECT * FROM t, i",
        "SELECT my_report(1)",
        "SELECT lo_export(1, '/tmp/x')",
        "SELECT * FROM query_to_xml('DELETE FROM t WHERE id = 1 RETURNING *', true, true, '')",
        "SELECT nextval('s'), pg_notify('c', 'x')",
        "EXPLAIN ANALYZE DELETE FROM t WHERE id = 1",
    ],
)
def test_a_select_allow_list_refuses_every_other_effect(sql: str) -> None:
    (decision,) = SELECT_ONLY.judge(sql)
    assert decision.action is Action.DENY, decision
    assert decision.effect is not None and decision.effect.kind is not K.SELECT


@pytest.mark.parametrize(
    "sql", ["SELECT 1", "SELECT * FROM t", "SELECT count(*), lower(name), now() FROM t GROUP BY 2",
            "WITH x AS (SELECT 1) SELECT * FROM x JOIN t ON true", "SELECT pg_sleep(0)"],
)
def test_a_select_allow_list_admits_plain_reads_and_builtin_calls(sql: str) -> None:
    assert action(SELECT_ONLY, sql) is Action.ALLOW


def test_a_table_allow_list_covers_only_the_tables_it_names() -> None:
    e = engine([{"name": "public-reads", "match": {"kinds": ["select"], "tables": ["public_*"]}, "action": "allow"},
                {"name": "scratch-deletes", "match": {"kinds": ["delete"], "tables": ["scratch"]}, "action": "allow"}],
               default="deny")
    assert action(e, "SELECT * FROM public_a") is Action.ALLOW
    assert action(e, "SELECT * FROM public_a JOIN secret s ON s.id = public_a.id") is Action.DENY
    assert action(e, "DELETE FROM scratch WHERE id = 1") is Action.ALLOW
    (d,) = e.judge("WITH d AS (DELETE FROM customers WHERE id = 1 RETURNING *) SELECT * FROM scratch, d")
    assert d.action is Action.DENY and d.effect is not None and d.effect.kind is K.DELETE
    assert d.effect.table is not None and d.effect.table.name == "customers"
    # Reading another table inside a permitted DELETE is a read of that table, judged as such.
    assert action(e, "DELETE FROM scratch WHERE id IN (SELECT id FROM secret)") is Action.DENY
    assert action(e, "DELETE FROM scratch WHERE id IN (SELECT id FROM public_ids)") is Action.ALLOW


def test_access_write_alone_matches_only_effects_that_change_something() -> None:
    e = engine([{"name": "no-writes", "match": {"access": "write"}, "action": "deny"}])
    for sql in ["SELECT 1", "SELECT * FROM t", "SHOW work_mem", "BEGIN", "SELECT lower('x')"]:
        assert action(e, sql) is Action.ALLOW, sql
    for sql in ["INSERT INTO t VALUES (1)", "SELECT pg_terminate_backend(1)", "CREATE TABLE x (a int)",
                "SELECT my_fn()", "DO $$ BEGIN END $$", "SET ROLE admin", "LOCK t"]:
        assert action(e, sql) is Action.DENY, sql


READ_ONLY_ALLOWED = [
    "SELECT * FROM t", "SELECT 1", "COPY t TO STDOUT", "COPY (SELECT * FROM t) TO STDOUT (FORMAT csv)",
    "SHOW search_path", "EXPLAIN SELECT * FROM t", "EXPLAIN ANALYZE SELECT * FROM t", "BEGIN", "COMMIT",
    "SET statement_timeout = 1000", "DECLARE c CURSOR FOR SELECT * FROM t", "FETCH 10 FROM c", "CLOSE c",
    "PREPARE q AS SELECT * FROM t WHERE id = $1", "DEALLOCATE q", "LISTEN ch", "SELECT pg_sleep(0)",
    "SET default_transaction_read_only = on", "BEGIN READ ONLY", "SELECT set_config('jit', 'off', false)",
]
READ_ONLY_DENIED = [
    "INSERT INTO t VALUES (1)", "UPDATE t SET a = 1 WHERE id = 2", "DELETE FROM t WHERE id = 1",
    "WITH d AS (DELETE FROM t WHERE id = 1 RETURNING *) SELECT * FROM d", "EXPLAIN ANALYZE DELETE FROM t",
    "SELECT pg_terminate_backend(1)", "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT my_fn()", "DO $$ BEGIN END $$", "CALL p()", "CREATE TABLE x (a int)", "DROP TABLE t",
    "TRUNCATE t", "COPY t FROM STDIN", "NOTIFY ch", "VACUUM t", "LOCK t", "SET ROLE admin",
    "GRANT SELECT ON t TO u", "SELECT * INTO x FROM t", "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE",
    "SELECT nextval('s')", "SELECT setval('s', 1)", "ALTER SYSTEM SET work_mem = '1GB'", "REFRESH MATERIALIZED VIEW m",
    "BEGIN READ WRITE", "SET TRANSACTION READ WRITE", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "SET default_transaction_read_only = off", "SET transaction_read_only = false",
]


@pytest.mark.parametrize("sql", READ_ONLY_ALLOWED)
def test_read_only_admits_what_changes_nothing(sql: str) -> None:
    assert action(engine([], access="read_only"), sql) is Action.ALLOW


@pytest.mark.parametrize("sql", READ_ONLY_DENIED)
def test_read_only_refuses_whatever_can_change_something(sql: str) -> None:
    (decision,) = engine([{"name": "anything", "action": "allow"}], access="read_only").judge(sql)
    assert decision.action is Action.DENY and decision.rule in ("read_only", "unknown"), decision


def test_read_only_shorthand_and_binding_override() -> None:
    assert GuardrailsPolicy.model_validate("read_only").access == "read_only"
    policy = parse_policy(
        """
version: 1
identities:
  analyst: {keys: true}
  etl: {keys: true}
targets:
  db: {host: h, credential_secret: s, databases: [app]}
bindings:
  - {identity: analyst, target: db, databases: [app], access: read_only, masking: off}
  - {identity: etl, target: db, databases: [app], unknown: allow}
guardrails:
  default: allow
  unknown: deny
masking: {enabled: true}
"""
    )
    analyst, etl = policy.bindings
    ro = policy.guardrails_for(analyst)
    assert ro is not None and ro.access == "read_only" and ro.unknown is Action.DENY
    assert policy.masking_for(analyst) is None
    other = policy.guardrails_for(etl)
    assert other is not None and other.access == "read_write" and other.unknown is Action.ALLOW
    assert policy.masking_for(etl) == policy.masking
    assert any("unknown: allow" in w for w in policy.warnings())


def test_validation_warns_about_rules_that_match_everything() -> None:
    policy = GuardrailsPolicy.model_validate({"rules": [
        {"name": "all", "action": "allow"},
        {"name": "every-table", "match": {"tables": ["*"]}, "action": "allow"},
        {"name": "fine", "match": {"kinds": ["select"]}, "action": "allow"},
    ]})
    warnings = policy.warnings()
    assert len(warnings) == 2 and "all" in warnings[0] and "every-table" in warnings[1]


def test_a_rule_naming_a_schema_may_match_an_unqualified_name() -> None:
    # An allow rule's "maybe" does not allow: `secrets` may live in any schema of the search path.
    e = engine([{"name": "public", "match": {"schemas": ["public"]}, "action": "allow"}], default="deny")
    assert action(e, "SELECT * FROM public.orders") is Action.ALLOW
    assert action(e, "SELECT * FROM orders") is Action.DENY
    # A deny rule's "maybe" refuses.
    e = engine([{"name": "vault", "match": {"tables": ["vault.*"]}, "action": "deny"}])
    assert action(e, "SELECT * FROM keys") is Action.DENY
    assert action(e, "SELECT * FROM public.keys") is Action.ALLOW


def test_a_maybe_deny_is_not_weakened_by_a_later_certain_hold() -> None:
    e = engine([{"name": "maybe-vault", "match": {"tables": ["vault.*"]}, "action": "hold"},
                {"name": "deny-keys", "match": {"tables": ["keys"]}, "action": "deny"}])
    assert e.judge("SELECT * FROM keys")[0].rule == "deny-keys"


def test_the_shape_cache_keeps_schema_names_apart() -> None:
    # pg_query's fingerprint ignores schema names; a verdict cached by it would carry over between schemas.
    e = engine([{"name": "vault", "match": {"schemas": ["vault"]}, "action": "deny"}])
    assert action(e, "SELECT * FROM public.keys WHERE id = 1") is Action.ALLOW
    assert action(e, "SELECT * FROM vault.keys WHERE id = 2") is Action.DENY
    assert action(e, "DELETE FROM public.keys WHERE id = 3") is Action.ALLOW
    assert action(e, "DELETE FROM vault.keys WHERE id = 4") is Action.DENY


def test_set_config_is_a_set_by_another_name() -> None:
    (stmt,) = classify("SELECT set_config('work_mem', '1MB', false)")
    assert K.SET in stmt.kinds and K.SIDE_EFFECT_FUNCTION not in stmt.kinds
    e = engine([{"name": "no-set", "match": {"kinds": ["set"]}, "action": "deny"}])
    assert action(e, "SELECT set_config('work_mem', '1MB', false)") is Action.DENY
    assert action(e, "SET work_mem = '1MB'") is Action.DENY
    assert action(e, "SELECT current_setting('work_mem')") is Action.ALLOW


def test_the_message_names_the_effect_that_decided() -> None:
    (d,) = SELECT_ONLY.judge("SELECT pg_terminate_backend(1)")
    assert d.message().startswith("Airlock denied SELECT (call of pg_terminate_backend()): rule \"default\"")


# --- property: an allow-list admits a statement only if each of its effects is surely allowed -----------

_TABLES = ["a", "b", "public.a", "vault.b", "c"]
_KINDS = [K.SELECT, K.INSERT, K.UPDATE, K.DELETE, K.SIDE_EFFECT_FUNCTION, K.OPAQUE_FUNCTION, K.TRUNCATE]
_STATEMENTS = [
    "SELECT * FROM a", "SELECT * FROM public.a JOIN vault.b ON true", "INSERT INTO a SELECT * FROM b",
    "WITH d AS (DELETE FROM c WHERE x = 1 RETURNING *) SELECT * FROM a, d", "UPDATE b SET x = 1 WHERE y = 2",
    "SELECT pg_terminate_backend(1) FROM a", "SELECT f(x) FROM c", "TRUNCATE a, vault.b", "SELECT 1",
    "DELETE FROM public.a WHERE x IN (SELECT x FROM b)", "COPY (SELECT * FROM c) TO STDOUT",
]

_rule = st.fixed_dictionaries(
    {"kinds": st.lists(st.sampled_from(_KINDS), max_size=2), "tables": st.lists(st.sampled_from(_TABLES), max_size=2)}
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_rule, max_size=4), st.sampled_from(_STATEMENTS))
def test_allow_lists_never_admit_an_effect_no_rule_surely_allows(rules: list[dict[str, Any]], sql: str) -> None:
    policy = [{"name": f"r{i}", "match": {k: [str(x) for x in v] for k, v in r.items() if v}, "action": "allow"}
              for i, r in enumerate(rules)]
    e = engine(policy, default="deny")
    (decision,) = e.judge(sql)
    (stmt,) = classify(sql)
    surely = all(
        effect.kind is K.FUNCTION or any(rule.test(effect) is Match.YES for rule in e.rules) for effect in stmt.effects
    )
    assert (decision.action is Action.ALLOW) == surely


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_rule, st.sampled_from(list(Action))), max_size=4), st.sampled_from(_STATEMENTS))
def test_a_statement_is_as_strict_as_its_strictest_effect(rules: list[tuple[dict[str, Any], Action]], sql: str) -> None:
    policy = [{"name": f"r{i}", "match": {k: [str(x) for x in v] for k, v in r.items() if v}, "action": a.value}
              for i, (r, a) in enumerate(rules)]
    e = engine(policy, default="allow")
    (decision,) = e.judge(sql)
    (stmt,) = classify(sql)
    for effect in stmt.effects:
        alone = e._judge_effect(effect, stmt)
        assert STRICTNESS[decision.action] >= STRICTNESS[alone.action]

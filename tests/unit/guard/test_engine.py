"""Guardrail engine: rule matching, first-match order, unknown handling, dry run, cache, messages."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shared.pg.sql import Action, GuardrailEngine, GuardrailsPolicy, PreparedStatements, StatementKind, first_block
from shared.pg.wire.messages import parse_error_fields


def engine(rules: list[dict[str, Any]], **policy: Any) -> GuardrailEngine:
    return GuardrailEngine(GuardrailsPolicy.model_validate({"rules": rules, **policy}))


NO_DDL = {"name": "no-ddl", "match": {"kinds": ["ddl_create", "ddl_alter", "drop", "truncate"]}, "action": "deny",
          "reason": "schema changes need a change request"}


def test_deny_message_names_rule_and_reason() -> None:
    (d,) = engine([NO_DDL]).judge("DROP TABLE orders")
    assert d.action is Action.DENY and d.rule == "no-ddl" and d.blocks
    assert d.message() == 'Airlock denied DROP TABLE: rule "no-ddl": schema changes need a change request'
    fields = parse_error_fields(d.error_response()[5:])
    assert fields["C"] == "42501" and fields["S"] == "ERROR" and fields["M"] == d.message()


def test_default_allows_and_unknown_denies() -> None:
    e = engine([NO_DDL])
    (ok,) = e.judge("SELECT 1")
    assert ok.action is Action.ALLOW and ok.rule == "default" and not ok.blocks
    (bad,) = e.judge("SELEC 1")
    assert bad.action is Action.DENY and bad.rule == "unknown" and bad.kind is StatementKind.UNKNOWN
    assert "could not establish" in bad.message() and "syntax error" in bad.message()


def test_unknown_is_checked_before_rules() -> None:
    e = engine([{"name": "everything", "action": "allow"}])
    assert e.judge("SELECT set_config(x, 'y', false) FROM t")[0].action is Action.DENY
    assert e.judge("EXECUTE never_prepared")[0].action is Action.DENY
    lenient = engine([], unknown="allow")
    assert lenient.judge("SELEC 1")[0].action is Action.ALLOW


def test_first_match_wins() -> None:
    e = engine([
        {"name": "allow-audit-inserts", "match": {"kinds": ["insert"], "tables": ["audit.*"]}, "action": "allow"},
        {"name": "no-writes", "match": {"kinds": ["insert", "update", "delete"]}, "action": "deny"},
    ])
    assert e.judge("INSERT INTO audit.log VALUES (1)")[0].rule == "allow-audit-inserts"
    assert e.judge("INSERT INTO public.t VALUES (1)")[0].rule == "no-writes"


def test_nested_effects_match_kind_rules() -> None:
    e = engine([{"name": "no-delete", "match": {"kinds": ["delete"]}, "action": "deny"}])
    for sql in ["WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "EXPLAIN ANALYZE DELETE FROM t",
                "DELETE FROM t", "COPY (DELETE FROM t WHERE a RETURNING *) TO STDOUT"]:
        assert e.judge(sql)[0].action is Action.DENY, sql
    assert e.judge("EXPLAIN DELETE FROM t")[0].action is Action.ALLOW


def test_table_schema_and_access_matching() -> None:
    e = engine([
        {"name": "payments-writes", "match": {"tables": ["payments.*"], "access": "write"}, "action": "hold"},
        {"name": "secret-schema", "match": {"schemas": ["vault"]}, "action": "deny"},
    ])
    assert e.judge("UPDATE payments.cards SET a = 1 WHERE id = 2")[0].rule == "payments-writes"
    assert e.judge("SELECT * FROM payments.cards")[0].rule == "default"
    assert e.judge('SELECT * FROM "VAULT".keys')[0].rule == "secret-schema", "globs compare case-insensitively"
    # An unqualified name may resolve into any schema on the search_path: it may be payments.cards (hold)
    # and it may be vault.cards (deny); the stricter refusal applies.
    assert e.judge("DELETE FROM cards WHERE id = 1")[0].rule == "secret-schema"
    assert e.judge("DELETE FROM payments.cards WHERE id = 1")[0].rule == "payments-writes"
    assert e.judge("SELECT * FROM keys")[0].rule == "secret-schema"


def test_function_rules_match_qualified_and_bare_names() -> None:
    e = engine([
        {"name": "advisory-ok", "match": {"functions": ["pg_advisory_*"]}, "action": "allow"},
        {"name": "no-side-effects", "match": {"kinds": ["side_effect_function"]}, "action": "deny"},
        {"name": "no-kill", "match": {"functions": ["pg_catalog.pg_terminate_backend"]}, "action": "deny"},
    ])
    assert e.judge("SELECT pg_advisory_lock(1)")[0].rule == "advisory-ok"
    assert e.judge("SELECT pg_catalog.pg_terminate_backend(1)")[0].rule == "no-side-effects"
    assert e.judge("SELECT lower('x')")[0].rule == "default"


def test_hold_is_refused_with_a_clear_message_until_approvals_are_wired() -> None:
    (d,) = engine([{"name": "big-deletes", "match": {"kinds": ["delete_no_where"]}, "action": "hold",
                    "reason": "ask #db-approvals"}]).judge("DELETE FROM t")
    assert d.action is Action.HOLD and d.blocks
    fields = parse_error_fields(d.error_response()[5:])
    assert fields["C"] == "42501" and 'rule "big-deletes"' in fields["M"] and "approvals" in fields["H"]


def test_dry_run_records_without_enforcing() -> None:
    e = engine([NO_DDL], dry_run=True)
    decisions = e.judge("DROP TABLE t; TRUNCATE t") + e.judge("SELEC 1")
    assert [d.action for d in decisions] == [Action.DENY, Action.DENY, Action.DENY]
    assert not any(d.enforced or d.blocks for d in decisions)
    assert first_block(decisions) is None


def test_multi_statement_string_is_judged_per_statement() -> None:
    decisions = engine([NO_DDL]).judge("SELECT 1; TRUNCATE t; SELECT 2")
    assert [d.action for d in decisions] == [Action.ALLOW, Action.DENY, Action.ALLOW]
    assert [d.statement for d in decisions] == ["SELECT 1", "TRUNCATE t", "SELECT 2"]
    blocked = first_block(decisions)
    assert blocked is not None and blocked.kind is StatementKind.TRUNCATE


def test_empty_query_has_no_decisions() -> None:
    assert engine([NO_DDL]).judge("  -- nothing\n") == []


def test_cache_hits_skip_the_parse() -> None:
    e = engine([NO_DDL])
    first = e.judge("SELECT * FROM orders WHERE id = 1")
    second = e.judge("SELECT * FROM orders WHERE id = 1")
    assert first == second and (e.hits, e.misses) == (1, 1)


def test_cache_is_bounded() -> None:
    e = engine([], cache_size=3)
    for i in range(10):
        e.judge(f"SELECT {i}")
    assert len(e._cache) == 3
    e.judge("SELECT 9")
    assert e.hits == 1


def test_prepared_statements_are_judged_by_their_body() -> None:
    e = engine([{"name": "no-delete", "match": {"kinds": ["delete"]}, "action": "deny"}])
    session = PreparedStatements()
    prepare, execute = e.judge("PREPARE p AS DELETE FROM t; EXECUTE p", session)
    assert prepare.action is Action.ALLOW, "preparing runs nothing"
    assert execute.action is Action.DENY and execute.rule == "no-delete"
    # EXECUTE depends on the session: a cached verdict must not leak to a session where p means SELECT.
    other = PreparedStatements()
    e.judge("PREPARE p AS SELECT 1", other)
    assert e.judge("EXECUTE p", other)[0].action is Action.ALLOW
    assert e.judge("EXECUTE p", session)[0].action is Action.DENY
    # A cache hit on a PREPARE still updates the session it is judged for.
    third = PreparedStatements()
    e.judge("PREPARE p AS DELETE FROM t; EXECUTE p", third)
    assert third.possible("p") != [None]


def test_extended_protocol_parse() -> None:
    e = engine([NO_DDL])
    session = PreparedStatements()
    stmt, decision = e.judge_one("DROP TABLE t")
    assert decision.action is Action.DENY
    session.confirm(session.track_parse("s1", stmt))
    assert e.judge("EXECUTE s1", session)[0].action is Action.DENY
    several, refused = e.judge_one("SELECT 1; SELECT 2")
    assert several.kind is StatementKind.UNKNOWN and refused.rule == "unknown"


def test_scope_filters_rules_by_identity_target_database() -> None:
    policy = GuardrailsPolicy.model_validate({"rules": [
        {"name": "ci-readonly", "match": {"identities": ["ci-*"], "kinds": ["insert"]}, "action": "deny"},
        {"name": "prod-only", "match": {"targets": ["prod"], "databases": ["orders"], "kinds": ["update"]},
         "action": "hold"},
    ]})
    ci = GuardrailEngine(policy, identity="ci-nightly", target="prod", database="orders")
    human = GuardrailEngine(policy, identity="alice", target="staging", database="orders")
    assert ci.judge("INSERT INTO t VALUES (1)")[0].action is Action.DENY
    assert ci.judge("UPDATE t SET a = 1 WHERE b")[0].action is Action.HOLD
    assert human.judge("INSERT INTO t VALUES (1)")[0].action is Action.ALLOW
    assert human.judge("UPDATE t SET a = 1 WHERE b")[0].action is Action.ALLOW


@pytest.mark.parametrize("bad", [
    {"rules": [{"name": "x", "action": "maybe"}]},
    {"rules": [{"name": "x", "action": "deny", "match": {"kinds": ["delete_everything"]}}]},
    {"rules": [{"name": "x", "action": "deny", "typo": 1}]},
    {"rules": [{"name": "x", "action": "deny"}, {"name": "x", "action": "allow"}]},
    {"unknown": "shrug"},
    {"dry_run": "sometimes"},
])
def test_policy_validation(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GuardrailsPolicy.model_validate(bad)


def test_long_statements_are_judged_but_not_cached() -> None:
    e = engine([NO_DDL])
    bulk = "INSERT INTO t VALUES " + ", ".join(f"({i})" for i in range(5000))
    assert e.judge(bulk)[0].kind is StatementKind.INSERT
    assert e.judge(bulk)[0].kind is StatementKind.INSERT
    assert e.hits == 0 and len(e._cache) == 0

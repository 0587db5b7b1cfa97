"""The classification cache: by text, and by shape only where constants cannot change the verdict."""

from __future__ import annotations

from unittest import mock

from shared.pg.sql import engine as engine_module
from shared.pg.sql.engine import GuardrailEngine
from shared.pg.sql.kinds import StatementKind
from shared.pg.sql.rules import GuardrailsPolicy

POLICY = GuardrailsPolicy.model_validate(
    {"rules": [{"name": "no-role", "match": {"kinds": ["set_role"]}, "action": "deny"}]}
)


def test_inlined_literals_share_one_parse() -> None:
    engine = GuardrailEngine(POLICY)
    with mock.patch.object(engine_module, "classify", wraps=engine_module.classify) as spy:
        for i in range(50):
            [d] = engine.judge(f"SELECT name FROM customers WHERE id = {i}")
            assert d.kind is StatementKind.SELECT and d.statement.endswith(f"= {i}")
    assert spy.call_count == 1


def test_constants_that_matter_are_never_served_from_the_shape_cache() -> None:
    engine = GuardrailEngine(POLICY)
    assert not engine.judge("SELECT set_config('jit', 'off', false)")[0].blocks
    assert engine.judge("SELECT set_config('role', 'postgres', false)")[0].blocks
    assert engine.judge("COPY t TO STDOUT")[0].kind is StatementKind.COPY_TO_CLIENT
    assert engine.judge("COPY t TO '/etc/passwd'")[0].kind is StatementKind.COPY_SERVER_FILE


def test_delete_with_and_without_where_differ_in_shape() -> None:
    engine = GuardrailEngine(POLICY)
    assert engine.judge("DELETE FROM t WHERE id = 1")[0].kind is StatementKind.DELETE
    assert engine.judge("DELETE FROM t")[0].kind is StatementKind.DELETE_NO_WHERE

"""Startup parameters read as PostgreSQL reads them, and judged as the SETs they are (shared/pg/startup.py)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pglast import ast, parse_sql

from shared.pg.sql import GuardrailEngine, GuardrailsPolicy, first_block
from shared.pg.startup import (
    StartupOptionsError,
    StartupSetting,
    judge_startup,
    parse_bool,
    parse_options,
    split_options,
    startup_settings,
)


def test_split_like_pg_split_opts() -> None:
    assert split_options("  -c a=b\t-c  c=d \n") == ["-c", "a=b", "-c", "c=d"]
    assert split_options(r"-c application_name=my\ app") == ["-c", "application_name=my app"]
    assert split_options(r"-c x=a\\b\ ") == ["-c", "x=a\\b "]
    assert split_options("-c x=y\\") == ["-c", "x=y"]  # a trailing backslash escapes nothing
    assert split_options("") == [] and split_options("   ") == []


def test_switches() -> None:
    assert parse_options("-c work_mem=1234kB -cstatement_timeout=4321 --search-path=a,b -c x.y=") == [
        ("work_mem", "1234kB"), ("statement_timeout", "4321"), ("search_path", "a,b"), ("x.y", ""),
    ]  # fmt: skip
    assert parse_options("-c a=b=c") == [("a", "b=c")]  # the first '=' splits


@pytest.mark.parametrize(
    ("options", "sqlstate", "words"),
    [
        ("-c work_mem", "42601", "-c work_mem requires a value"),
        ("--work_mem", "42601", "--work_mem requires a value"),
        ("-c", "42601", "requires an argument"),
        ("-c =1", "42601", "needs a name"),
        ("--", "42601", '"--" with no setting'),
        ("work_mem=1", "42601", "invalid command-line argument"),
        ("-B 100", "0A000", "not -B"),
        ("-Fc x=y", "0A000", "not -F"),
    ],
)
def test_what_is_not_a_setting_is_refused(options: str, sqlstate: str, words: str) -> None:
    with pytest.raises(StartupOptionsError) as info:
        parse_options(options)
    assert info.value.sqlstate == sqlstate and words in str(info.value)


NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
VALUES = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=30)


def _escape(text: str) -> str:
    return "".join("\\" + ch if ch in " \t\n\r\f\v\\" else ch for ch in text)


SWITCHES = st.sampled_from(["-c ", "-c", "--"])


@given(st.lists(st.tuples(NAMES, VALUES, SWITCHES), max_size=5), st.sampled_from([" ", "\t", "  \n"]))
def test_round_trip(settings: list[tuple[str, str, str]], gap: str) -> None:
    options = gap.join(f"{switch}{_escape(name)}={_escape(value)}" for name, value, switch in settings)
    assert parse_options(options) == [(name.replace("-", "_"), value) for name, value, _ in settings]


def test_parameters_are_settings_options_first() -> None:
    params = {"user": "u", "database": "d", "options": "-c DateStyle=ISO -c work_mem=1MB", "_pq_.x": "1",
              "application_name": "app", "datestyle": "German"}  # fmt: skip
    settings = startup_settings(params)
    assert [(s.name, s.value, s.origin) for s in settings] == [
        ("DateStyle", "ISO", "options"), ("work_mem", "1MB", "options"),
        ("application_name", "app", "parameter"), ("datestyle", "German", "parameter"),
    ]  # fmt: skip
    verdict = judge_startup(settings, None)
    # As on the server: the parameter wins over the option of the same (case-insensitive) name.
    assert verdict.refused is None and verdict.allowed == {"work_mem": "1MB", "application_name": "app",
                                                           "datestyle": "German"}  # fmt: skip


@given(NAMES, VALUES)
def test_the_set_statement_says_the_same(name: str, value: str) -> None:
    (raw,) = parse_sql(StartupSetting(name, value, "parameter").as_sql())
    stmt = raw.stmt
    assert isinstance(stmt, ast.VariableSetStmt)
    assert stmt.name == name and stmt.args[0].val.sval == value  # type: ignore[index, union-attr]


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("role", "postgres", "role the session runs as"),
        ("Session_Authorization", "postgres", "role the session runs as"),
        ("standard_conforming_strings", "off", "reads SQL text"),
        ("standard_conforming_strings", "of", "reads SQL text"),
        ("backslash_quote", "on", "reads SQL text"),
        ("session_preload_libraries", "auto_explain", "loads code"),
        ("user", "postgres", "not a setting"),
    ],
)
def test_never_allowed_whatever_the_policy(name: str, value: str, words: str) -> None:
    allow_all = GuardrailEngine(GuardrailsPolicy.model_validate({"rules": [{"name": "all", "action": "allow"}]}))
    for judge in (None, _judge(allow_all)):
        verdict = judge_startup([StartupSetting(name, value, "options")], judge)
        assert verdict.refused is not None and words in verdict.message()
        assert f'"{name}" (in options) is not allowed' in verdict.message()


def test_harmless_lexing_settings_pass() -> None:
    settings = [StartupSetting("standard_conforming_strings", "on", "parameter"),
                StartupSetting("escape_string_warning", "off", "parameter"),
                StartupSetting("client_encoding", "UTF8", "parameter")]  # fmt: skip
    assert judge_startup(settings, None).refused is None


def test_judged_by_the_guardrails_like_any_set() -> None:
    rules: list[dict[str, Any]] = [{"name": "no-set", "match": {"kinds": ["set"]}, "action": "deny",
                                    "reason": "settings are fixed"}]  # fmt: skip
    engine = GuardrailEngine(GuardrailsPolicy.model_validate({"rules": rules}))
    verdict = judge_startup([StartupSetting("work_mem", "1MB", "parameter")], _judge(engine))
    assert verdict.refused is not None
    assert 'rule "no-set": settings are fixed' in verdict.message()


def _judge(engine: GuardrailEngine) -> Any:
    def judge(sql: str) -> str | None:
        blocked = first_block(engine.judge(sql))
        return blocked.message() if blocked else None

    return judge


def test_parse_bool_like_postgres() -> None:
    assert [parse_bool(v) for v in ("on", "ON", "t", "tru", "yes", "y", "1")] == [True] * 7
    assert [parse_bool(v) for v in ("off", "of", "f", "no", "n", "0")] == [False] * 6
    assert [parse_bool(v) for v in ("o", "", "truex", "2", "10")] == [None] * 5

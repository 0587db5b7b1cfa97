"""Playbooks: the relay judges what the server will run, read as the server reads it, when it runs."""

from __future__ import annotations

import struct

from shared.pg.relay import DENIED_TOKEN, AlertEvent, DecisionEvent, Output, Relay, StatementEvent
from shared.pg.sql.engine import GuardrailEngine
from shared.pg.sql.rules import GuardrailsPolicy
from shared.pg.wire import messages as m
from shared.pg.wire.framing import Framer

GUARD = GuardrailsPolicy.model_validate({"rules": [
    {"name": "no-drop", "match": {"kinds": ["drop"]}, "action": "deny"},
    {"name": "no-delete", "match": {"kinds": ["delete"]}, "action": "deny"},
]})
GBK_ATTACK = "SELECT E'中\\'; DROP TABLE t; -- '".encode()  # UTF-8 bytes; in GBK the backslash is inside a character


def relay() -> Relay:
    return Relay(GuardrailEngine(GUARD))


def agent(r: Relay, *messages: bytes) -> tuple[bytes, Output]:
    chunk, frames = Framer(limit=1 << 20).feed(b"".join(messages))
    return chunk, r.from_agent(chunk, frames, now_ns=1_000)


def backend(r: Relay, *messages: bytes) -> Output:
    chunk, frames = Framer(limit=1 << 20).feed(b"".join(messages))
    return r.from_backend(chunk, frames, now_ns=5_000)


def query(raw: bytes) -> bytes:
    return m.frame(b"Q", raw + b"\0")


def parse(name: str, raw: bytes) -> bytes:
    return m.frame(b"P", name.encode() + b"\0" + raw + b"\0" + b"\0\0")


def bind(portal: str = "", statement: str = "") -> bytes:
    return m.frame(b"B", portal.encode() + b"\0" + statement.encode() + b"\0" + struct.pack("!hhh", 0, 0, 0))


def execute(portal: str = "") -> bytes:
    return m.frame(b"E", portal.encode() + b"\0" + struct.pack("!i", 0))


def complete(tag: str) -> bytes:
    return m.frame(b"C", tag.encode() + b"\0")


def ready(status: bytes = b"I") -> bytes:
    return m.build_ready_for_query(status)


def blocked(out: Output) -> bool:
    return DENIED_TOKEN.encode() in b"".join(out.to_peer)


def decisions(out: Output) -> list[str]:
    return [e.decision.rule for e in out.events if isinstance(e, DecisionEvent) and e.decision.blocks]


# ------------------------------------------------------------------------------------------------ lexing


def test_gbk_reads_a_backslash_inside_a_character_as_the_server_does() -> None:
    r = relay()
    r.observe_parameter("client_encoding", "GBK")
    _, out = agent(r, query(GBK_ATTACK))
    assert blocked(out) and decisions(out) == ["no-drop"]
    # The same bytes under UTF-8 are one harmless SELECT (and that is what a UTF-8 server runs).
    _, out = agent(relay(), query(GBK_ATTACK))
    assert not blocked(out)


def test_backslashes_are_not_judged_while_standard_conforming_strings_is_off() -> None:
    r = relay()
    r.observe_parameter("standard_conforming_strings", "off")
    _, out = agent(r, query(b"SELECT 'a\\', '; DROP TABLE t; -- '"))
    assert blocked(out) and decisions(out) == ["unknown"]
    _, out = agent(r, query(b"SELECT 'no backslash here'"))  # reads the same either way
    assert not blocked(out)


def test_a_statement_behind_a_pending_set_client_encoding_waits_for_the_server() -> None:
    r = relay()
    chunk, out = agent(r, query(b"SET client_encoding = 'GBK'"), query(GBK_ATTACK), m.TERMINATE)
    assert out.deferred is not None and chunk[out.deferred:][:1] == b"Q"
    assert out.requests == 1 and not out.terminate  # only the SET went on; the Terminate waits too
    rest = chunk[out.deferred:]
    back = backend(r, complete("SET"), m.build_parameter_status("client_encoding", "GBK"), ready())
    assert back.resume
    _, out = agent(r, rest)  # the I/O layer feeds what waited
    assert blocked(out) and decisions(out) == ["no-drop"] and out.terminate


def test_a_pending_change_does_not_hold_statements_that_read_the_same_anyway() -> None:
    r = relay()
    _, out = agent(r, query(b"SET client_encoding = 'GBK'"), query(b"SELECT 1"))
    assert out.deferred is None and out.requests == 2


def test_in_one_extended_batch_a_statement_after_a_possible_change_is_not_judged() -> None:
    r = relay()
    _, out = agent(r, parse("", b"SELECT set_config('client_encoding', 'GBK', false)"), bind(), execute(),
                   parse("s", GBK_ATTACK), bind("", "s"), execute(), m.SYNC)
    assert blocked(out) and "unknown" in decisions(out)


def test_a_change_nothing_announced_ends_the_session_when_statements_were_exposed() -> None:
    r = relay()
    # A table read (a trigger or a view may run code) and then a sensitive statement in the same batch.
    agent(r, parse("", b"SELECT * FROM t"), bind(), execute(), parse("", "SELECT 'é'".encode()), bind(),
          execute(), m.SYNC)
    out = backend(r, m.frame(b"1", b""), m.frame(b"2", b""), complete("SELECT 0"), m.frame(b"1", b""),
                  m.frame(b"2", b""), complete("SELECT 1"), m.build_parameter_status("client_encoding", "SJIS"))
    assert out.fatal is not None and "client_encoding" in out.fatal[1]
    assert any(isinstance(e, AlertEvent) for e in out.events)


def test_a_reported_change_with_nothing_exposed_is_just_followed() -> None:
    r = relay()
    agent(r, query(b"SET client_encoding = 'LATIN1'"))
    out = backend(r, complete("SET"), m.build_parameter_status("client_encoding", "LATIN1"), ready())
    assert out.fatal is None and r.lexing.client_encoding == "LATIN1"
    _, out = agent(r, query("SELECT 'café'".encode("latin-1")))
    assert not blocked(out) and out.deferred is None


# ------------------------------------------------------------------------------------ prepared statements


def test_bind_and_execute_of_a_sql_prepared_statement_are_judged_by_its_body() -> None:
    r = relay()
    _, out = agent(r, query(b"PREPARE q AS DELETE FROM t"))
    assert not blocked(out), "a PREPARE runs nothing"
    backend(r, complete("PREPARE"), ready())
    _, out = agent(r, bind("", "q"), execute(), m.SYNC)
    assert blocked(out) and decisions(out) == ["no-delete"]
    sent = [t for t, _, _ in Framer(limit=1 << 20).feed(b"".join(out.to_peer))[1]]
    assert chr(sent[0]) == "P"  # the Bind became a Parse that fails: nothing of q runs


def test_a_refused_redefinition_leaves_the_old_body_in_force() -> None:
    r = relay()
    agent(r, query(b"PREPARE p AS DELETE FROM t WHERE id = 1"))
    backend(r, complete("PREPARE"), ready())
    agent(r, query(b"PREPARE p AS SELECT 1"))  # the server refuses: p exists
    backend(r, m.build_error("ERROR", "42P05", 'prepared statement "p" already exists'), ready())
    _, out = agent(r, query(b"EXECUTE p"))
    assert blocked(out) and decisions(out) == ["no-delete"]


def test_execute_pipelined_behind_an_unanswered_redefinition_is_judged_by_both_bodies() -> None:
    r = relay()
    agent(r, query(b"PREPARE p AS DELETE FROM t WHERE id = 1"))
    backend(r, complete("PREPARE"), ready())
    _, out = agent(r, query(b"PREPARE p AS SELECT 1"), query(b"EXECUTE p"))
    assert decisions(out) == ["no-delete"]


def test_a_parse_the_server_refused_does_not_replace_the_statement_it_holds() -> None:
    r = relay()
    agent(r, parse("s", b"DELETE FROM t WHERE id = 1"), m.SYNC)  # denied by rule: never reaches the server
    agent(r, parse("s", b"SELECT 1"), m.SYNC)
    backend(r, m.build_error("ERROR", "42601", "whatever"), ready(), m.frame(b"1", b""), ready())
    _, out = agent(r, bind("", "s"), execute(), m.SYNC)
    assert not blocked(out)
    _, out = agent(r, bind("", "nope"), execute(), m.SYNC)
    assert blocked(out) and decisions(out) == ["unknown"]


def test_policy_changes_apply_to_statements_prepared_earlier() -> None:
    r = Relay(GuardrailEngine(GuardrailsPolicy()))
    agent(r, parse("s", b"DELETE FROM t WHERE id = 1"), m.SYNC)
    backend(r, m.frame(b"1", b""), ready())
    _, out = agent(r, bind("", "s"), execute(), m.SYNC)
    assert not blocked(out)
    backend(r, m.frame(b"2", b""), complete("DELETE 1"), ready())
    r.guard = GuardrailEngine(GUARD)  # a new grant at renewal
    _, out = agent(r, bind("", "s"), execute(), m.SYNC)
    assert blocked(out) and decisions(out) == ["no-delete"]


# ------------------------------------------------------------------------------------------- accounting


def test_every_statement_the_server_completes_is_accounted_even_if_airlock_read_fewer() -> None:
    r = Relay()  # no guardrails: the text is one statement to nobody, but the server may run two
    agent(r, query(b"SELECT 1; SELECT 2"))
    out = backend(r, complete("SELECT 1"), complete("SELECT 1"), complete("DROP TABLE"), ready())
    texts = [e.text for e in out.events if isinstance(e, StatementEvent)]
    assert len(texts) == 3 and "DROP TABLE" in texts[2]
    assert any(isinstance(e, AlertEvent) for e in out.events)

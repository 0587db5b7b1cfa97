"""Playbook tests for the sans-I/O session layer: this arrives, this must go out."""

from __future__ import annotations

import struct

import pytest

from shared.masking.rules import MaskingPolicy
from shared.pg.masking.catalog import Attribute, FixedCatalog, Relation, catalog_of
from shared.pg.masking.engine import ResultMasker
from shared.pg.relay import DENIED_TOKEN, DecisionEvent, MaskEvent, Relay, StatementEvent, with_protections
from shared.pg.sql.engine import GuardrailEngine
from shared.pg.sql.rules import GuardrailsPolicy
from shared.pg.wire import messages as m
from shared.pg.wire.errors import ProtocolViolation
from shared.pg.wire.framing import Framer

CARD = b"4111111111111111"
TEXT_OID = 25

GUARD = GuardrailsPolicy.model_validate({
    "rules": [{"name": "no-drop", "match": {"kinds": ["drop"]}, "action": "deny", "reason": "ask a human"}],
})


def agent(relay: Relay, *messages: bytes) -> tuple[bytes, list[bytes], list[object]]:
    chunk, frames = Framer(limit=1 << 20).feed(b"".join(messages))
    out = relay.from_agent(chunk, frames, now_ns=1_000)
    return chunk, out.to_peer, list(out.events)


def backend(relay: Relay, *messages: bytes) -> tuple[bytes, list[bytes], list[object]]:
    chunk, frames = Framer(limit=1 << 20).feed(b"".join(messages))
    out = relay.from_backend(chunk, frames, now_ns=5_000)
    return chunk, out.to_peer, list(out.events)


def split(data: bytes) -> list[tuple[str, bytes]]:
    chunk, frames = Framer(limit=1 << 20).feed(data)
    return [(chr(t), chunk[s:e]) for t, s, e in frames]


def row_description(*names: str, type_oid: int = TEXT_OID, fmt: int = 0) -> bytes:
    return m.build_row_description(m.Field(n, 0, 0, type_oid, -1, -1, fmt) for n in names)


def command_complete(tag: str) -> bytes:
    return m.frame(b"C", tag.encode() + b"\0")


def syntax_error_for(forwarded: bytes) -> bytes:
    token = forwarded.split(DENIED_TOKEN.encode(), 1)[1][:16].decode()
    return m.build_error("ERROR", "42601", f'syntax error at or near "{DENIED_TOKEN}{token}"')


def test_allowed_query_passes_through_as_the_same_bytes() -> None:
    relay = Relay(GuardrailEngine(GUARD))
    chunk, out, events = agent(relay, m.build_query("SELECT 1"))
    assert out == [chunk] and out[0] is chunk
    assert [type(e) for e in events] == [DecisionEvent]
    reply = (row_description("x") + m.build_data_row([b"1"]) + command_complete("SELECT 1")
             + m.build_ready_for_query(b"I"))
    chunk, out, events = backend(relay, reply)
    assert out[0] is chunk
    assert [(e.kind, e.rows, e.error_code) for e in events if isinstance(e, StatementEvent)] == [("select", 1, None)]


def test_denied_query_never_reaches_the_backend_and_the_error_names_the_rule() -> None:
    relay = Relay(GuardrailEngine(GUARD))
    _, out, _ = agent(relay, m.build_query("drop table customers"))
    forwarded = b"".join(out)
    assert b"customers" not in forwarded and DENIED_TOKEN.encode() in forwarded
    _, out, events = backend(relay, syntax_error_for(forwarded), m.build_ready_for_query(b"T"))
    replies = split(b"".join(out))
    fields = m.parse_error_fields(replies[0][1])
    assert fields["C"] == "42501" and 'rule "no-drop"' in fields["M"] and "ask a human" in fields["M"]
    assert replies[1] == ("Z", b"T")  # the transaction state is the backend's own
    stmt = next(e for e in events if isinstance(e, StatementEvent))
    assert (stmt.kind, stmt.decision, stmt.error_code, stmt.rule) == ("drop", "deny", "42501", "no-drop")


def test_extended_pipeline_with_a_denied_parse() -> None:
    relay = Relay(GuardrailEngine(GUARD))
    ok = [m.build_parse("", "SELECT 1"), m.frame(b"B", b"\0\0" + struct.pack("!hhh", 0, 0, 0)),
          m.build_describe("P", ""), m.frame(b"E", b"\0" + struct.pack("!i", 0))]
    bad = [m.build_parse("s2", "DROP TABLE t")]
    _, out, _ = agent(relay, *ok, *bad, m.SYNC)
    sent = split(b"".join(out))
    assert [t for t, _ in sent] == ["P", "B", "D", "E", "P", "S"]
    assert m.parse_parse(sent[0][1]).query == "SELECT 1"
    assert m.parse_parse(sent[4][1]).query.startswith(DENIED_TOKEN)
    reply = (m.frame(b"1", b"") + m.frame(b"2", b"") + row_description("x") + m.build_data_row([b"1"])
             + command_complete("SELECT 1") + syntax_error_for(b"".join(out)) + m.build_ready_for_query(b"I"))
    _, out, events = backend(relay, reply)
    kinds = [t for t, _ in split(b"".join(out))]
    assert kinds == ["1", "2", "T", "D", "C", "E", "Z"]
    assert m.parse_error_fields(split(b"".join(out))[5][1])["C"] == "42501"
    assert [e.error_code for e in events if isinstance(e, StatementEvent)] == [None, "42501"]


def test_masks_a_card_in_a_text_row_and_leaves_other_rows_identical() -> None:
    relay = Relay(masker=ResultMasker(MaskingPolicy()))
    agent(relay, m.build_query("SELECT card FROM t"))
    clean = m.build_data_row([b"hello"])
    reply = (row_description("card") + m.build_data_row([CARD]) + clean + command_complete("SELECT 2")
             + m.build_ready_for_query(b"I"))
    _, out, events = backend(relay, reply)
    messages = split(b"".join(out))
    assert m.parse_data_row(messages[1][1]) == [b"************1111"]
    assert messages[2][1] == clean[5:]
    assert any(isinstance(e, MaskEvent) and e.counts for e in events)


def test_the_same_columns_under_another_statement_get_another_plan() -> None:
    """Plans were cached by RowDescription bytes: ``SELECT ssn AS x`` and ``SELECT name AS x`` look the same
    on the wire, but only one of them carries a covered column."""
    policy = MaskingPolicy.model_validate({"columns": [{"name": "ssn", "action": "redact"}]})
    customers = Relation(1, "public", "customers", "r", (Attribute("name", TEXT_OID), Attribute("ssn", TEXT_OID)))
    catalog = FixedCatalog(catalog_of([customers]))
    relay = Relay(GuardrailEngine(GUARD), ResultMasker(policy, catalog=catalog))
    secret = m.build_data_row([b"not-shaped-like-anything"])
    outputs = []
    for sql in (
        "SELECT ssn AS x FROM customers", "SELECT name AS x FROM customers", "SELECT upper(ssn) AS x FROM customers",
        "SELECT name AS x FROM customers; SELECT ssn AS x FROM customers",
    ):
        agent(relay, m.build_query(sql))
        answers = [row_description("x") + secret + command_complete("SELECT 1") for _ in sql.split(";")]
        _, out, _ = backend(relay, *answers, m.build_ready_for_query(b"I"))
        outputs.append([m.parse_data_row(body) for t, body in split(b"".join(out)) if t == "D"])
    assert outputs == [[[b"****"]], [[b"not-shaped-like-anything"]], [[b"****"]],
                       [[b"not-shaped-like-anything"], [b"****"]]]


def test_a_schema_change_is_seen_until_its_transaction_ends() -> None:
    policy = MaskingPolicy.model_validate({"columns": [{"name": "ssn", "action": "redact"}]})
    catalog = FixedCatalog(catalog_of([]))
    relay = Relay(GuardrailEngine(GUARD), ResultMasker(policy, catalog=catalog))
    agent(relay, m.build_query("BEGIN; CREATE TEMP TABLE v AS SELECT 'x'::text AS ssn; ALTER TABLE v RENAME ssn TO y"))
    backend(relay, command_complete("BEGIN"), command_complete("SELECT 1"), command_complete("ALTER TABLE"),
            m.build_ready_for_query(b"T"))
    assert catalog.invalidations == 2
    agent(relay, m.build_query("SELECT y FROM v"))
    _, out, _ = backend(relay, row_description("y") + m.build_data_row([b"plain"]) + command_complete("SELECT 1"),
                        m.build_ready_for_query(b"T"))
    assert [m.parse_data_row(b) for t, b in split(b"".join(out)) if t == "D"] == [[b"****"]], "fails closed"
    agent(relay, m.build_query("COMMIT"))
    backend(relay, command_complete("COMMIT"), m.build_ready_for_query(b"I"))
    assert catalog.invalidations == 3, "once committed, the catalog is read again"


def test_undescribed_portal_gets_an_injected_describe_whose_answer_is_swallowed() -> None:
    relay = Relay(masker=ResultMasker(MaskingPolicy()))
    bind = m.frame(b"B", b"\0s\0" + struct.pack("!hhh", 0, 0, 1) + struct.pack("!h", 0))
    _, out, _ = agent(relay, m.build_parse("s", "SELECT card FROM t"), bind,
                      m.frame(b"E", b"\0" + struct.pack("!i", 0)), m.SYNC)
    assert [t for t, _ in split(b"".join(out))] == ["P", "B", "D", "E", "S"]
    reply = (m.frame(b"1", b"") + m.frame(b"2", b"") + row_description("card") + m.build_data_row([CARD])
             + command_complete("SELECT 1") + m.build_ready_for_query(b"I"))
    _, out, _ = backend(relay, reply)
    messages = split(b"".join(out))
    assert [t for t, _ in messages] == ["1", "2", "D", "C", "Z"]  # no RowDescription the agent didn't ask for
    assert m.parse_data_row(messages[2][1]) == [b"************1111"]


def test_rows_with_no_known_shape_fail_closed() -> None:
    relay = Relay(masker=ResultMasker(MaskingPolicy()))
    with pytest.raises(ProtocolViolation):
        backend(relay, m.build_data_row([CARD]))


def test_fast_path_function_call_is_refused_under_guardrails() -> None:
    relay = Relay(GuardrailEngine(GUARD))
    _, out, events = agent(relay, m.frame(b"F", struct.pack("!I", 2096) + b"\0\0\0\0\0\0\0\0"))
    assert split(b"".join(out))[0][0] == "Q"  # replaced by a statement the backend refuses
    assert isinstance(events[0], DecisionEvent) and events[0].decision.blocks


def test_pipelined_simple_queries_are_accounted_to_the_right_statement() -> None:
    relay = Relay(GuardrailEngine(GUARD))
    agent(relay, m.build_query("SELECT 1"), m.build_query("SELECT 2; SELECT 3"))
    reply = b"".join([
        row_description("a"), m.build_data_row([b"1"]), command_complete("SELECT 1"), m.build_ready_for_query(b"I"),
        row_description("b"), m.build_data_row([b"2"]), command_complete("SELECT 1"),
        row_description("c"), m.build_data_row([b"3"]), command_complete("SELECT 1"), m.build_ready_for_query(b"I"),
    ])
    _, _, events = backend(relay, reply)
    assert [e.text for e in events if isinstance(e, StatementEvent)] == ["SELECT 1", "SELECT 2", "SELECT 3"]


def _card_query(relay: Relay, *, ready: bool = True) -> bytes:
    agent(relay, m.build_query("SELECT card FROM t"))
    reply = row_description("card") + m.build_data_row([CARD]) + command_complete("SELECT 1")
    _, out, _ = backend(relay, reply + (m.build_ready_for_query(b"I") if ready else b""))
    return b"".join(out)


def test_masking_added_at_renewal_applies_from_the_next_statement() -> None:
    relay = Relay(GuardrailEngine(GUARD), None)
    assert CARD in _card_query(relay)
    relay = with_protections(relay, relay.guard, ResultMasker(MaskingPolicy()))
    assert CARD not in _card_query(relay)


def test_a_new_masker_waits_for_the_result_in_flight_and_then_takes_over() -> None:
    old = ResultMasker(MaskingPolicy())
    relay = Relay(None, old)
    agent(relay, m.build_query("SELECT card FROM t"))
    _, out, _ = backend(relay, row_description("card") + m.build_data_row([CARD]))
    assert CARD not in b"".join(out)
    # The policy changes mid-result (masking switched off): the rest of this result keeps the old plan.
    relay = with_protections(relay, None, None)
    assert relay.masker is old
    _, out, _ = backend(relay, m.build_data_row([CARD]) + command_complete("SELECT 2") + m.build_ready_for_query(b"I"))
    assert CARD not in b"".join(out)
    assert relay.masker is None
    assert CARD in _card_query(relay)  # the next statement runs under the new policy


def test_renewing_with_the_same_masker_changes_nothing() -> None:
    masker = ResultMasker(MaskingPolicy())
    relay = Relay(None, masker)
    agent(relay, m.build_query("SELECT card FROM t"))
    relay = with_protections(relay, None, masker)
    assert relay.masker is masker
    _, out, _ = backend(relay, row_description("card") + m.build_data_row([CARD]) + command_complete("SELECT 1")
                        + m.build_ready_for_query(b"I"))
    assert CARD not in b"".join(out) and relay.masker is masker

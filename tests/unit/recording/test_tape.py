"""A recording's tape has two twins, compiled (``_tape.Tape``) and pure Python (``TapePy``): the same
events, counts and chunk signals for the same calls, and, for statements, the line ``StatementLines``
makes, byte for byte, whichever of the two wrote it (the compiled one writes ASCII lines itself)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.recording import tape as tape_module
from shared.recording.audit import STATEMENT_LIMIT, StatementLines
from shared.recording.format import EVENT_HEADER, decode_events
from shared.recording.tape import TapePy
from tests.compiled import require_compiled

# 2026-11-24 23:59:59 UTC and the seconds around it; and a time far out (no fast stamp for year 10000).
SECOND = 1_795_564_799 * 10**9


@pytest.fixture
def compiled() -> None:
    require_compiled(tape_module.COMPILED, "the compiled tape (shared/recording/_tape.c)")


def make(cls: Callable[..., TapePy], chunk_size: int, times: list[int]) -> TapePy:
    ticks: Iterator[int] = itertools.cycle(times)
    return cls(chunk_size, lambda: next(ticks))


def compiled_cls() -> Callable[..., TapePy]:
    from shared.recording._tape import Tape

    return Tape


def state(t: TapePy) -> tuple[int, ...]:
    return (t.next_seq, t.pending_bytes, t.bytes_agent, t.bytes_proxy, t.statements,
            t.first_seq if t.pending_bytes else -1, t.first_ts if t.pending_bytes else -1)  # fmt: skip


op = st.one_of(
    st.tuples(st.just("wire"), st.sampled_from([0, 1]), st.binary(max_size=60)),
    st.tuples(st.just("agent"), st.binary(max_size=60)),
    st.tuples(st.just("proxy"), st.binary(max_size=60)),
    st.tuples(
        st.just("append"),
        st.integers(0, 2),
        st.sampled_from([0, 1, 16, 255]),
        st.binary(max_size=30),
        st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    ),
    st.tuples(st.just("take"), st.binary(max_size=8)),
    st.tuples(st.just("count"), st.integers(0, 3)),
    st.tuples(st.just("open"), st.booleans()),
)


@pytest.mark.usefixtures("compiled")
@settings(max_examples=300)
@given(st.lists(op, max_size=40), st.sampled_from([1, 30, 100, 1 << 20]),
       st.lists(st.integers(0, 2**62), min_size=1, max_size=5))  # fmt: skip
def test_the_twins_record_the_same_events(ops: list[tuple[Any, ...]], chunk_size: int, times: list[int]) -> None:
    tapes = [make(compiled_cls(), chunk_size, times), make(TapePy, chunk_size, times)]
    fulls = [0, 0]
    for i, t in enumerate(tapes):
        t.on_full = lambda i=i: fulls.__setitem__(i, fulls[i] + 1)  # type: ignore[misc]
    for step in ops:
        got = []
        for t in tapes:
            name, *args = step
            if name == "open":
                t.open = args[0]
                got.append(None)
            else:
                got.append(getattr(t, name)(*args))
        assert got[0] == got[1], step
        assert state(tapes[0]) == state(tapes[1]), step
        assert fulls[0] == fulls[1]
    # What is pending decodes to the latest events, numbered in order.
    rest = [t.take(b"") for t in tapes]
    assert rest[0] == rest[1]
    seqs = [e.seq for e in decode_events(rest[0], where="pending")]
    assert seqs == list(range(tapes[0].next_seq - len(seqs), tapes[0].next_seq))


@pytest.mark.parametrize("cls", [TapePy, "compiled"])
def test_a_read_becomes_one_wire_event_and_a_full_chunk_calls_back(cls: Any, request: pytest.FixtureRequest) -> None:
    if cls == "compiled":
        request.getfixturevalue("compiled")
        cls = compiled_cls()
    t = make(cls, EVENT_HEADER.size + 10, [SECOND])
    full: list[int] = []
    t.on_full = lambda: full.append(t.pending_bytes)
    t.agent(b"")  # nothing relayed, nothing recorded
    t.agent(b"Q\x00\x00\x00\x05")
    assert (t.next_seq, t.bytes_agent, full) == (1, 5, [])
    t.proxy(b"Z\x00\x00\x00\x05I")
    assert full == [2 * EVENT_HEADER.size + 11] and t.bytes_proxy == 6
    events = decode_events(t.take(), where="tape")
    assert [(e.seq, e.ts_ns, e.direction, e.kind, e.payload) for e in events] == [
        (0, SECOND, 0, 0, b"Q\x00\x00\x00\x05"),
        (1, SECOND, 1, 0, b"Z\x00\x00\x00\x05I"),
    ]
    t.open = False  # sealed: the relay's later calls are ignored, not raised
    t.agent(b"X")
    t.statement("SELECT 1")
    assert (t.next_seq, t.pending_bytes, t.statements) == (2, 0, 0)


@pytest.mark.parametrize("cls", [TapePy, "compiled"])
def test_out_of_range_fields_are_value_errors(cls: Any, request: pytest.FixtureRequest) -> None:
    if cls == "compiled":
        request.getfixturevalue("compiled")
        cls = compiled_cls()
    t = make(cls, 100, [SECOND])
    with pytest.raises(ValueError, match="field out of range"):
        t.append(2, 256, b"", None)
    with pytest.raises(ValueError, match="field out of range"):
        t.append(2, 16, b"", 2**63)
    with pytest.raises(ValueError, match="wire direction"):
        t.wire(2, b"x")
    assert t.next_seq == 0 and t.pending_bytes == 0


# ---- statement lines

ASCII = st.text(st.characters(max_codepoint=127), max_size=40)
ANY = st.text(max_size=40)  # lone surrogates included: the line is encoded with surrogatepass


def line_of(cls: Callable[..., TapePy], time_ns: int, identity: str, *args: Any, **kwargs: Any) -> tuple[str, bytes]:
    lines = StatementLines(session_id="ses_1", identity=identity, target="demo", database="d\u00e9mo", proxy_id="p1")
    t = make(cls, 1 << 20, [time_ns])
    out: list[tuple[str, bytes]] = []
    t.lines(lines.encoded_prefix(), STATEMENT_LIMIT, lambda d, line: out.append((d, line)), lines.line)
    t.statement(*args, **kwargs)
    assert t.statements == 1 and len(out) == 1
    return out[0]


@pytest.mark.usefixtures("compiled")
@settings(max_examples=400)
@given(
    statement=st.one_of(ASCII, ANY, st.text(st.characters(max_codepoint=127), min_size=STATEMENT_LIMIT - 2,
                                            max_size=STATEMENT_LIMIT + 2), st.text(min_size=1000, max_size=1100)),
    kind=st.one_of(st.none(), ASCII, ANY),
    decision=st.one_of(st.none(), st.sampled_from(["allow", "deny", "hold"]), ANY),
    rows=st.one_of(st.none(), st.integers(-(2**70), 2**70)),
    duration=st.one_of(st.none(), st.integers(-(2**70), 2**70)),
    code=st.one_of(st.none(), st.sampled_from(["42501", "57014"]), ANY),
    time_ns=st.one_of(st.integers(SECOND - 3 * 10**9, SECOND + 3 * 10**9), st.integers(0, 2**63 - 1)),
    identity=st.one_of(st.just("ci-nightly"), ANY),
)  # fmt: skip
def test_the_twins_write_the_same_line(
    statement: str, kind: str | None, decision: str | None, rows: int | None, duration: int | None,
    code: str | None, time_ns: int, identity: str,
) -> None:  # fmt: skip
    args = (statement, kind, decision, rows, duration, code)
    try:
        want = line_of(TapePy, time_ns, identity, *args)
    except (ValueError, OverflowError) as e:  # a date Python cannot write: the compiled twin says the same
        with pytest.raises(type(e)):
            line_of(compiled_cls(), time_ns, identity, *args)
        return
    assert line_of(compiled_cls(), time_ns, identity, *args) == want


@pytest.mark.parametrize("cls", [TapePy, "compiled"])
def test_statement_takes_keywords_and_defaults_like_the_method_it_replaced(
    cls: Any, request: pytest.FixtureRequest
) -> None:
    if cls == "compiled":
        request.getfixturevalue("compiled")
        cls = compiled_cls()
    date, line = line_of(cls, SECOND, "ci-nightly", "SELECT 1", rows=1, duration_ns=1_500_000)
    assert date == "2026-11-24"
    assert line == (
        b'{"time":"2026-11-24T23:59:59.000000Z","event":"statement","session_id":"ses_1","identity":"ci-nightly",'
        b'"target":"demo","database":"d\xc3\xa9mo","proxy_id":"p1","statement":"SELECT 1","statement_truncated":false,'
        b'"statement_kind":null,"decision":"allow","rows":1,"duration_ms":1.500000,"error_code":null,"reason":null}\n'
    )
    t = make(cls, 100, [SECOND])
    with pytest.raises(TypeError):
        t.statement()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        t.statement("SELECT 1", nonsense=1)  # type: ignore[call-arg]
    t.statement(text="SELECT 1", error_code="57014")  # no sink set up: counted only
    assert t.statements == 1

"""The login gate: caps and waiting, refusal budgets and their aggregates (proxy/admission.py)."""

from __future__ import annotations

import asyncio

from proxy.admission import MAX_SOURCES, OTHER_SOURCES, LoginGate, LoginSlot


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gate(clock: Clock | None = None, **caps: int) -> LoginGate:
    clock = clock or Clock()
    return LoginGate(
        max_total=caps.get("total", 4), max_per_source=caps.get("per_source", 2), burst=3, rate=0.5,
        clock=clock, wall=clock,
    )  # fmt: skip


def test_caps_wait_and_hand_over_in_order() -> None:
    async def run() -> None:
        g = gate()
        a1, a2 = await g.admit("a", 1), await g.admit("a", 1)
        assert isinstance(a1, LoginSlot) and isinstance(a2, LoginSlot)
        waiting_a = asyncio.ensure_future(g.admit("a", 5))  # a is at its own cap: waits
        waiting_a2 = asyncio.ensure_future(g.admit("a", 0.01))
        await asyncio.sleep(0)
        b1, _ = await g.admit("b", 1), await g.admit("b", 1)
        assert g.unauthenticated == 4
        waiting_c = asyncio.ensure_future(g.admit("c", 5))  # the proxy is full: waits
        await asyncio.sleep(0)
        refused = await g.admit("a", 1)  # a already has as many waiting as it may hold
        assert isinstance(refused, str) and "from a" in refused
        assert isinstance(await waiting_a2, str)  # its wait ran out
        b1.release()  # a is still at its cap, so the place goes to c, not to a, although a came first
        assert isinstance(await waiting_c, LoginSlot) and not waiting_a.done()
        a1.release()
        assert isinstance(await waiting_a, LoginSlot)
        a1.release()  # idempotent
        assert g.unauthenticated == 4
        slot = await g.admit("d", 0.05)  # full, nobody leaves: gives up after its wait
        assert isinstance(slot, str) and "within" in slot
        assert g.unauthenticated == 4 and not g._queue

    asyncio.run(run())


def test_refusals_are_recorded_within_the_budget_then_counted() -> None:
    clock = Clock()
    g = gate(clock)
    assert [g.refused("x", "28P01", recordable=True) for _ in range(4)] == [True, True, True, False]
    assert g.throttled("x") == 2.0  # one token at 0.5 per second
    assert g.throttled("y") is None
    assert not g.refused("y", "28000 without TLS", recordable=False)  # never one by one, costs no token
    assert g.throttled("y") is None
    clock.now += 2
    assert g.throttled("x") is None and g.refused("x", "28P01", recordable=True)
    aggregates = {a.source: a for a in g.take_aggregates()}
    assert aggregates["x"].count == 1 and aggregates["x"].reasons == (("28P01", 1),)
    assert aggregates["y"].describe() == (
        "1 refused connections from y not recorded one by one (rate limit): 28000 without TLS: 1"
    )
    assert g.take_aggregates() == []  # counts reset


def test_sources_are_bounded() -> None:
    g = gate()
    for i in range(MAX_SOURCES + 10):
        g.refused(f"10.0.{i // 256}.{i % 256}", "28P01", recordable=False)
    assert len(g._sources) <= MAX_SOURCES + 1
    total = sum(a.count for a in g.take_aggregates())
    assert total == MAX_SOURCES + 10  # nothing is lost: the oldest sources are merged into "*"
    assert OTHER_SOURCES in {s for s in g._sources} or not g._sources

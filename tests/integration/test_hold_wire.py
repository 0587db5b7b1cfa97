"""Just-in-time approval on the wire: a held statement waits in the proxy, a click (signed as Slack signs
it) decides, and only then does anything reach the backend."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from airlock.devstack.demo_data import APP_ROLE
from shared.pg.wire import messages as m
from tests.integration.rawpg import login
from tests.integration.stack import AirlockStack, eventually

pytestmark = pytest.mark.stack

SCHEMA = "holdtest"  # the demo rule holds DELETE on any table called customers


@pytest.fixture
def rows(stack: AirlockStack) -> Iterator[None]:
    yield from _rows(stack)
    # Whatever a failed test left waiting is denied, so no session hangs until its approval expires.
    out = stack.cli("approvals", "list", "--status", "pending", "--json", check=False).stdout
    for approval in map(json.loads, out.splitlines()):
        stack.cli("dev", "approvals", "click", approval["approval_id"], "deny", "--as", "dana", check=False)
    out = stack.cli("approvals", "allowances", "--json", check=False).stdout
    for allowance in map(json.loads, out.splitlines()):  # an "Approve for N minutes" must not outlive its test
        if not allowance.get("revoked_at"):
            stack.cli("approvals", "revoke", allowance["allowance_id"], "--as", "U0DEMODANA", check=False)
            time.sleep(2.5)  # the proxy's allowance cache


def _rows(stack: AirlockStack) -> Iterator[None]:
    with psycopg.connect(stack.target_dsn, autocommit=True) as direct:
        direct.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        direct.execute(f'CREATE SCHEMA {SCHEMA} AUTHORIZATION "{APP_ROLE}"')
        direct.execute(f"CREATE TABLE {SCHEMA}.customers AS SELECT g AS id FROM generate_series(1, 20) g")
        direct.execute(f'ALTER TABLE {SCHEMA}.customers OWNER TO "{APP_ROLE}"')
    yield
    with psycopg.connect(stack.target_dsn, autocommit=True) as direct:
        direct.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def present(stack: AirlockStack, customer: int) -> bool:
    with psycopg.connect(stack.target_dsn) as direct:
        row = direct.execute(f"SELECT count(*) FROM {SCHEMA}.customers WHERE id = %s", (customer,)).fetchone()
        return bool(row and row[0])


def pending(stack: AirlockStack, needle: str) -> str:
    """The id of the pending approval whose statement contains ``needle`` (waits for it to appear)."""
    found: list[str] = []

    def look() -> bool:
        out = stack.cli("approvals", "list", "--status", "pending", "--json").stdout
        found[:] = [a["approval_id"] for a in map(json.loads, out.splitlines()) if needle in a.get("statement", "")]
        return bool(found)

    assert eventually(look, timeout=30), f"no pending approval for {needle!r}"
    return found[0]


def status_of(stack: AirlockStack, approval_id: str) -> str:
    out = stack.cli("approvals", "list", "--limit", "200", "--json").stdout
    return next(a["status"] for a in map(json.loads, out.splitlines()) if a["approval_id"] == approval_id)


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = work()
        except BaseException as e:
            result["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def test_approve_once_and_the_statement_runs(stack: AirlockStack, rows: None) -> None:
    notices: list[str] = []
    with psycopg.connect(stack.conninfo(), autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        thread, result = in_thread(lambda: conn.execute(f"DELETE FROM {SCHEMA}.customers WHERE id = 1").rowcount)
        approval = pending(stack, "id = 1")
        time.sleep(0.5)
        assert present(stack, 1), "nothing reaches the backend before the decision"
        assert thread.is_alive()
        assert "HTTP 200" in stack.cli("dev", "approvals", "click", approval, "approve", "--as", "dana").stdout
        thread.join(30)
        assert result.get("value") == 1, result
        assert any(approval in n and "holding this statement" in n for n in notices), notices
        assert any("approved by" in n for n in notices), notices
    assert not present(stack, 1)


def test_deny_names_the_approver_and_the_reason(stack: AirlockStack, rows: None) -> None:
    with psycopg.connect(stack.conninfo(), autocommit=True) as conn:
        thread, result = in_thread(lambda: conn.execute(f"DELETE FROM {SCHEMA}.customers WHERE id = 2"))
        approval = pending(stack, "id = 2")
        stack.cli("approvals", "deny", approval, "--reason", "not during the freeze", "--as", "U0DEMODANA")
        thread.join(30)
        error = result.get("error")
        assert isinstance(error, psycopg.errors.InsufficientPrivilege), result
        assert "denied by" in str(error) and "not during the freeze" in str(error)
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the session goes on
    assert present(stack, 2)


def test_a_pipelined_statement_waits_behind_the_held_one(stack: AirlockStack, rows: None) -> None:
    conn, _ = login(stack.proxy_port, "ci-nightly", stack.token("ci-nightly"))
    try:
        conn.send(m.build_query(f"DELETE FROM {SCHEMA}.customers WHERE id = 3") + m.build_query("SELECT 'after'"))
        approval = pending(stack, "id = 3")
        notice = conn.read(timeout=10)
        assert notice[0] == ord("N") and approval in m.parse_error_fields(notice[1])["M"]
        with pytest.raises(TimeoutError):
            conn.read(timeout=1)  # nothing else: not even the SELECT behind it
        stack.cli("dev", "approvals", "click", approval, "approve", "--as", "dana")
        first = conn.read_until("Z")
        assert any(t == ord("C") and b.startswith(b"DELETE 1") for t, b in first)
        second = conn.read_until("Z")
        assert any(t == ord("D") and b"after" in b for t, b in second)
    finally:
        conn.close()


def test_approve_for_n_minutes_lets_the_same_shape_through_without_asking(stack: AirlockStack, rows: None) -> None:
    with psycopg.connect(stack.conninfo(), autocommit=True) as conn:
        thread, _ = in_thread(lambda: conn.execute(f"DELETE FROM {SCHEMA}.customers WHERE id = 4"))
        approval = pending(stack, "id = 4")
        stack.cli("dev", "approvals", "click", approval, "approve", "--as", "dana", "--allowance")
        thread.join(30)
        started = time.monotonic()
        assert conn.execute(f"DELETE FROM {SCHEMA}.customers WHERE id = 5").rowcount == 1
        assert time.monotonic() - started < 10
    assert not present(stack, 4) and not present(stack, 5)
    allowances = stack.cli("approvals", "allowances", "--json").stdout
    used = [a for a in map(json.loads, allowances.splitlines()) if a["approval_id"] == approval]
    assert used and used[0]["uses"] >= 1


def test_cancel_while_waiting_withdraws_the_request(stack: AirlockStack, rows: None) -> None:
    with psycopg.connect(stack.conninfo(), autocommit=True) as conn:
        thread, result = in_thread(lambda: conn.execute(f"DELETE FROM {SCHEMA}.customers WHERE id = 6"))
        approval = pending(stack, "id = 6")
        conn.cancel()
        thread.join(30)
        assert isinstance(result.get("error"), psycopg.errors.QueryCanceled), result
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert eventually(lambda: status_of(stack, approval) == "withdrawn")
    assert present(stack, 6)


def test_disconnecting_while_waiting_withdraws_the_request(stack: AirlockStack, rows: None) -> None:
    conn, _ = login(stack.proxy_port, "ci-nightly", stack.token("ci-nightly"))
    conn.send(m.build_query(f"DELETE FROM {SCHEMA}.customers WHERE id = 7"))
    approval = pending(stack, "id = 7")
    conn.close()
    assert eventually(lambda: status_of(stack, approval) == "withdrawn")
    stack.cli("dev", "approvals", "click", approval, "approve", "--as", "dana", check=False)  # too late: nothing runs
    time.sleep(1)
    assert present(stack, 7)


def test_expiry_refuses_with_a_clear_error(stack: AirlockStack, rows: None, tmp_path: Path) -> None:
    original = stack.state_dir / "policy.yaml"
    policy = yaml.safe_load(original.read_text())
    policy["approvals"]["timeout_seconds"] = 5
    short = tmp_path / "short.yaml"
    short.write_text(yaml.safe_dump(policy))
    stack.cli("policy", "push", str(short))
    try:
        time.sleep(6)  # the authorize Lambda's policy cache
        with psycopg.connect(stack.conninfo(), autocommit=True) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
                conn.execute(f"DELETE FROM {SCHEMA}.customers WHERE id = 8")
            assert "expired" in str(info.value)
    finally:
        stack.cli("policy", "push", str(original))
    assert present(stack, 8)


def test_an_unreachable_approvals_service_fails_closed(stack: AirlockStack, rows: None) -> None:
    with (
        stack.extra_proxy(env={"AIRLOCK_APPROVALS_FUNCTION": "no-such-function"}) as (port, _),
        psycopg.connect(stack.conninfo(port=port), autocommit=True) as conn,
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            conn.execute(f"DELETE FROM {SCHEMA}.customers WHERE id = 9")
        assert "could not be put to an approver" in str(info.value)
    assert present(stack, 9)


def test_sigterm_while_waiting_withdraws_and_ends_the_session(stack: AirlockStack, rows: None) -> None:
    with stack.extra_proxy() as (port, process):
        conn = psycopg.connect(stack.conninfo(port=port), autocommit=True)
        thread, result = in_thread(lambda: conn.execute(f"DELETE FROM {SCHEMA}.customers WHERE id = 10"))
        approval = pending(stack, "id = 10")
        process.send_signal(signal.SIGTERM)
        thread.join(30)
        assert isinstance(result.get("error"), psycopg.Error), result
        conn.close()
    assert eventually(lambda: status_of(stack, approval) == "withdrawn")
    assert present(stack, 10)

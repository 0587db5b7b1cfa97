"""The seed's story: the offboarded contractor's nightly job must stop, mid-session included."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.integration.stack import TEST_GRANT_TTL, AirlockStack


def connect_error(conninfo: str) -> psycopg.OperationalError:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(conninfo).close()
    return info.value


def test_refusals_never_reach_the_target(stack: AirlockStack) -> None:
    bad_token = connect_error(stack.conninfo("ci-nightly", token="not-a-token"))
    assert "Airlock refused the connection" in str(bad_token)
    # A token for one identity does not open a session for another.
    stolen = connect_error(stack.conninfo("contractor", token=stack.token("ci-nightly")))
    assert "Airlock refused the connection" in str(stolen)
    forged = stack.token("ci-nightly")
    header, payload, signature = forged.split(".")
    tampered = connect_error(stack.conninfo("ci-nightly", token=f"{header}.{payload}.{signature[::-1]}"))
    assert "Airlock refused the connection" in str(tampered)
    no_binding = connect_error(stack.conninfo("ci-nightly", dbname="postgres"))
    assert "Airlock refused the connection" in str(no_binding)
    plain = connect_error(stack.conninfo("ci-nightly", sslmode="disable"))
    assert "only over TLS" in str(plain)


def test_revoked_contractor_is_cut_off_live_and_refused_next_time(stack: AirlockStack) -> None:
    live = psycopg.connect(stack.conninfo("contractor"), autocommit=True)
    try:
        assert live.execute("SELECT count(*) FROM customers").fetchone() == (10000,)
        stack.cli("identity", "revoke", "contractor", "--reason", "contract ended")
        refused = connect_error(stack.conninfo("contractor"))
        assert "revoked" in str(refused) and "contract ended" in str(refused)
        # The live session ends at its next grant renewal (grants last TEST_GRANT_TTL seconds).
        deadline = time.monotonic() + 3 * TEST_GRANT_TTL
        message = ""
        while time.monotonic() < deadline:
            try:
                live.execute("SELECT 1")
            except psycopg.OperationalError as e:
                message = str(e)
                break
            time.sleep(0.2)
        assert "Airlock terminated this session" in message and "revoked" in message, message
        assert live.closed or live.broken
    finally:
        live.close()
        stack.cli("identity", "reinstate", "contractor")
    with psycopg.connect(stack.conninfo("contractor")) as again:
        assert again.execute("SELECT 1").fetchone() == (1,)


def test_session_outlives_many_grant_renewals(stack: AirlockStack) -> None:
    with psycopg.connect(stack.conninfo("ci-nightly")) as conn:
        deadline = time.monotonic() + 1.5 * TEST_GRANT_TTL
        while time.monotonic() < deadline:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            time.sleep(0.5)


def test_refusal_sqlstates_on_the_wire(stack: AirlockStack) -> None:
    from tests.integration.rawpg import error_fields, login

    conn, said = login(stack.proxy_port, "ci-nightly", "not-a-token")
    fields = error_fields(said)
    assert (fields["S"], fields["C"]) == ("FATAL", "28P01")
    assert conn.closed_by_peer()
    conn, said = login(stack.proxy_port, "ci-nightly", stack.token("ci-nightly"), database="postgres")
    assert error_fields(said)["C"] == "28000"
    assert "postgres" in error_fields(said)["M"]

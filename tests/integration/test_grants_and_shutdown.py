"""A session never outlives its grant, and a draining proxy opens nothing more for a login in flight."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest

from tests.integration.outage import Forwarder
from tests.integration.rawpg import error_fields, login
from tests.integration.stack import TEST_GRANT_TTL, AirlockStack


@pytest.fixture
def control_plane(stack: AirlockStack) -> Iterator[Forwarder]:
    """The local Lambda endpoint behind a forwarder the test can stall (a hung control plane)."""
    url = urlparse(stack.info["lambda_endpoint"])
    forwarder = Forwarder(url.hostname or "127.0.0.1", url.port or 80)
    yield forwarder
    forwarder.close()


def test_a_session_never_outlives_its_grant(stack: AirlockStack, control_plane: Forwarder) -> None:
    # The control plane hangs when the grant is due for renewal. The renewal call then takes as long as
    # its timeouts allow (here a minute); the grant's expiry must end the session on time regardless.
    env = {"AWS_ENDPOINT_URL_LAMBDA": control_plane.url}
    with stack.extra_proxy(env=env, authorize_timeout="30") as (port, _):
        conn = psycopg.connect(stack.conninfo(port=port), autocommit=True)
        granted = time.monotonic()
        control_plane.stall()
        message = ""
        while time.monotonic() < granted + TEST_GRANT_TTL + 10:
            try:
                conn.execute("SELECT 1")
            except psycopg.OperationalError as e:
                message = str(e)
                break
            time.sleep(0.2)
        ended_after = time.monotonic() - granted
        control_plane.up()
        conn.close()
    assert "grant expired" in message, message
    assert TEST_GRANT_TTL - 1 < ended_after < TEST_GRANT_TTL + 3, ended_after


def test_sigterm_during_login_opens_no_recording_and_no_backend(
    stack: AirlockStack, control_plane: Forwarder
) -> None:
    proxy_id = f"drain-{uuid.uuid4().hex[:6]}"
    env = {"AWS_ENDPOINT_URL_LAMBDA": control_plane.url}
    with stack.extra_proxy(env=env, authorize_timeout="30", drain_seconds="10", proxy_id=proxy_id) as (port, process):
        # A live statement keeps the drain going for a few seconds.
        busy = psycopg.connect(stack.conninfo(port=port), autocommit=True)
        worker = threading.Thread(target=lambda: busy.execute("SELECT pg_sleep(4)"))
        worker.start()
        time.sleep(0.3)
        # A login whose token is with the (hung) control plane when SIGTERM arrives.
        control_plane.stall()
        said: list[dict[str, str]] = []
        token = stack.token("ci-nightly")

        def log_in() -> None:
            said.append(error_fields(login(port, "ci-nightly", token, params={"application_name": "late"})[1]))

        late = threading.Thread(target=log_in)
        late.start()
        time.sleep(1.0)
        process.terminate()
        time.sleep(0.5)
        control_plane.up()  # authorize answers now, during the drain, with a grant
        late.join(15)
        worker.join(15)
        assert process.wait(20) == 0
        busy.close()
        log = (Path(stack.state_dir) / f"proxy-{port}.log").read_text()
    assert said and said[0]["C"] == "57P01" and "shutting down" in said[0]["M"], said
    # Only the busy session was granted a relay; the late login opened no backend connection...
    assert len(re.findall(r"session.* granted", log)) == 1, log
    # ... and no recording: its only trace is a refused item saying why.
    out = stack.cli("sessions", "list", "--identity", "ci-nightly", "--since", "5m", "--json").stdout
    mine = [r for r in map(json.loads, out.splitlines()) if r["proxy_id"] == proxy_id]
    assert sorted(r["status"] for r in mine) == ["closed", "refused"], mine
    (refused,) = [r for r in mine if r["status"] == "refused"]
    assert "shutdown" in refused["reason"] and not refused["prefix"]

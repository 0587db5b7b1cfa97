"""The proxy authenticates the target before it trusts it or hands it a password.

The hostile servers here are stand-ins (tests/integration/impostor.py): a real PostgreSQL cannot be made
to skip its SCRAM proof. The honest side of each rule is covered against real servers in
test_backend_tls.py (md5 with and without the opt-in) and by every other test (SCRAM to the target)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.integration.impostor import Impostor
from tests.integration.policies import pushed_policy, put_secret
from tests.integration.stack import AirlockStack

SECRET = "airlock/targets/impostor"
DATABASE = "impostored"


@pytest.fixture(scope="module")
def impostors(stack: AirlockStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Impostor]]:
    servers = {
        "impostor-scram": Impostor("scram-without-proof"),
        "impostor-cleartext": Impostor("cleartext"),
        "impostor-md5": Impostor("md5"),
        "impostor-md5-optin": Impostor("md5"),
    }
    put_secret(stack, SECRET, {"username": "airlock_app", "password": "decoy-password"})

    def edit(policy: dict[str, Any]) -> None:
        for name, server in servers.items():
            # A database of their own: dbname=demo keeps meaning the demo target for every other test.
            policy["targets"][name] = {
                "host": "127.0.0.1", "port": server.port, "credential_secret": SECRET, "tls": "prefer",
                "databases": [DATABASE], "allow_insecure_password": name.endswith("-optin"),
            }  # fmt: skip
            policy["bindings"].append({"identity": "ci-nightly", "target": name, "databases": [DATABASE]})

    def ready() -> bool:
        try:
            psycopg.connect(stack.conninfo(dbname=f"impostor-md5-optin/{DATABASE}")).close()
        except psycopg.OperationalError:
            return False
        return True

    with pushed_policy(stack, edit, tmp_path_factory.mktemp("impostors"), ready):
        yield servers
    for server in servers.values():
        server.close()


def test_a_server_that_skips_its_scram_proof_is_not_the_target(
    stack: AirlockStack, impostors: dict[str, Impostor]
) -> None:
    with pytest.raises(psycopg.OperationalError, match="could not verify the target database's identity"):
        psycopg.connect(stack.conninfo(dbname=f"impostor-scram/{DATABASE}"))
    assert "AuthenticationOk without its SCRAM proof" in stack.proxy_log()


@pytest.mark.parametrize("kind", ["cleartext", "md5"])
def test_no_password_for_a_server_nothing_authenticates(
    stack: AirlockStack, impostors: dict[str, Impostor], kind: str
) -> None:
    server = impostors[f"impostor-{kind}"]
    with pytest.raises(psycopg.OperationalError, match="will not send the target's password") as info:
        psycopg.connect(stack.conninfo(dbname=f"impostor-{kind}/{DATABASE}"))
    assert f"{kind} password authentication over tls prefer" in str(info.value)
    assert server.received == []


def test_the_policy_can_opt_in_knowingly(stack: AirlockStack, impostors: dict[str, Impostor]) -> None:
    server = impostors["impostor-md5-optin"]
    before = len(server.received)
    psycopg.connect(stack.conninfo(dbname=f"impostor-md5-optin/{DATABASE}")).close()
    assert len(server.received) == before + 1 and server.received[-1][5:8] == b"md5"

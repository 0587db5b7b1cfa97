"""What approvers read: sensitive literals masked (pglast's scanner for SQL, the value detectors for any
text), everything else as written; the digest covers the exact text."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.approvals.model import ApprovalRequest, statement_digest
from shared.approvals.statement import masked_statement
from shared.masking import detectors
from shared.masking.detectors import Detector

CARD = "4111 1111 1111 1111"
SECRETS = [CARD, "bob@example.com", "123-45-6789", "AKIAIOSFODNN7EXAMPLE", "ghp_" + "a1" * 18]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("DELETE FROM customers WHERE id = 42", "DELETE FROM customers WHERE id = 42"),
        (f"DELETE FROM customers WHERE card = '{CARD}'", "DELETE FROM customers WHERE card = '[masked:card]'"),
        ("SELECT 4111111111111111", "SELECT [masked:card]"),
        ("UPDATE t SET email = E'bob@example.com' WHERE id = 1", "UPDATE t SET email = E'[masked:email]' WHERE id = 1"),
        ("ALTER ROLE app PASSWORD 'hunter2'", "ALTER ROLE app PASSWORD '[masked:password]'"),
        ("CREATE ROLE app LOGIN ENCRYPTED PASSWORD 'x' VALID UNTIL '2030-01-01'",
         "CREATE ROLE app LOGIN ENCRYPTED PASSWORD '[masked:password]' VALID UNTIL '2030-01-01'"),
        # Comments are no tokens: the whole-text pass still finds what hides there.
        ("DELETE FROM t -- by bob@example.com\nWHERE id = 1", "DELETE FROM t -- by [masked:email]\nWHERE id = 1"),
        # Text the scanner refuses still gets the whole-text pass.
        ("SELECT 'bob@example.com", "SELECT '[masked:email]"),
        ("SELECT $$ 123-45-6789 $$", "SELECT $$ [masked:ssn] $$"),
    ],
)
def test_sql_literals(sql: str, expected: str) -> None:
    assert masked_statement(sql, "postgres") == expected


def test_other_protocols_are_masked_by_the_detectors() -> None:
    command = "curl -H 'X-Token: ghp_" + "a1" * 18 + "' https://example.com/?card=4111111111111111"
    assert masked_statement(command, "ssh") == "curl -H 'X-Token: [masked:github_token]' https://example.com/?card=[masked:card]"
    assert masked_statement("DELETE /api/v1/namespaces/prod/pods/web-1", "kubernetes") == (
        "DELETE /api/v1/namespaces/prod/pods/web-1"
    )


@given(
    prefix=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40),
    secret=st.sampled_from(SECRETS),
    quote=st.sampled_from(["'", "", "$$"]),
)
def test_no_detected_secret_survives(prefix: str, secret: str, quote: str) -> None:
    sql = f"SELECT {prefix} {quote}{secret}{quote}"
    for protocol in ("postgres", "ssh"):
        masked = masked_statement(sql, protocol)
        assert secret not in masked
        assert not detectors.find(masked, frozenset(Detector))


def test_requests_carry_masked_text_and_the_digest_of_the_exact_text() -> None:
    sql = f"DELETE FROM customers WHERE card = '{CARD}'"
    request = ApprovalRequest.for_statement(
        sql, protocol="postgres", session_id="ses_1", proxy_id="p", identity="ci", target="demo", database="demo",
        kinds=["delete"], tables=["customers"], rule="r", approvers="dba", timeout_seconds=60, idempotency_key="k" * 8,
    )  # fmt: skip
    assert CARD not in request.statement and request.digest == hashlib.sha256(sql.encode()).hexdigest()
    assert request.digest == statement_digest(sql)
    # The approval id is derived from session and key: a retry lands on the same item, another session not.
    assert request.derive_approval_id() == request.model_copy().derive_approval_id()
    assert request.derive_approval_id() != request.model_copy(update={"session_id": "ses_2"}).derive_approval_id()
    long = ApprovalRequest.for_statement(
        "SELECT " + "1," * 10_000 + "1", protocol="postgres", session_id="s", proxy_id="p", identity="i", target="t",
        rule="r", approvers="g", timeout_seconds=60, idempotency_key="k" * 8,
    )  # fmt: skip
    assert long.statement_truncated and len(long.statement) == 16_384

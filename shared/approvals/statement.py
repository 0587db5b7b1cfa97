"""Statement text for people: what an approver reads, with sensitive literals masked.

An approval travels to Slack, to SNS subscribers and into DynamoDB, so the exact statement must not:
a ``WHERE card = '4111 1111 1111 1111'`` or an ``ALTER ROLE ... PASSWORD '...'`` would leak there. For
PostgreSQL the text is cut into tokens by PostgreSQL's own scanner (pglast), and each literal (string,
bit string, number) is checked by the value detectors of ``shared.masking.detectors`` (cards, SSNs,
e-mails, IBANs, cloud keys, tokens, JWTs, private keys); a string literal right after ``PASSWORD`` is
masked whatever it holds. Then the detectors run over the whole text once more, which catches values in
comments and identifiers, values whose evidence spans tokens (``aws_secret_access_key = '...'``), text
the scanner refuses (an unterminated quote), and every other protocol's text (SSH commands, Kubernetes
request lines). Other literals stay as written: an approver has to see ``WHERE id = 42`` to judge it.
"""

from __future__ import annotations

from pglast import parser

from shared.masking import detectors
from shared.masking.detectors import Detector

_ALL = frozenset(Detector)
_LITERALS = frozenset({"SCONST", "USCONST", "BCONST", "XCONST", "ICONST", "FCONST"})
PASSWORD_MASK = "'[masked:password]'"


def mask_values(text: str) -> str:
    """``text`` with every value a detector confirms replaced by ``[masked:<detector>]``."""
    found = detectors.find(text, _ALL)
    if not found:
        return text
    out: list[str] = []
    pos = 0
    for match in found:
        out += (text[pos : match.start], f"[masked:{match.detector}]")
        pos = match.end
    out.append(text[pos:])
    return "".join(out)


def _mask_sql_literals(sql: str) -> str:
    try:
        tokens = parser.scan(sql)
    except parser.ParseError:
        return sql  # the whole-text pass still runs
    out: list[str] = []
    pos = 0
    previous = ""
    for token in tokens:
        if token.name in _LITERALS:
            end = token.end + 1  # the scanner's end offset is inclusive (and counts characters)
            literal = sql[token.start : end]
            masked = PASSWORD_MASK if previous == "PASSWORD" and token.name == "SCONST" else mask_values(literal)
            if masked != literal:
                out += (sql[pos : token.start], masked)
                pos = end
        previous = token.name
    out.append(sql[pos:])
    return "".join(out)


def masked_statement(text: str, protocol: str) -> str:
    """What approvers see of ``text`` (see the module docstring)."""
    if protocol == "postgres":
        text = _mask_sql_literals(text)
    return mask_values(text)

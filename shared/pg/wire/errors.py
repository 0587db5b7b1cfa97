"""Protocol errors know whose fault they are (the peer's or ours), like h11's."""

from __future__ import annotations


class ProtocolViolation(Exception):
    """The peer sent bytes that are not valid PostgreSQL protocol.

    ``sqlstate`` is what a server would answer (08P01 protocol_violation by default); the message is
    safe to show to the peer and to log: it never quotes payload bytes.
    """

    def __init__(self, message: str, sqlstate: str = "08P01") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate

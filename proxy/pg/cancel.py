"""CancelRequest through the proxy.

The agent sees the backend's real process id (clients compare it with ``pg_backend_pid()`` and with
NOTIFY sender ids) and a secret key the proxy made up. A CancelRequest carrying that pair is mapped to
the session's real backend key and sent to the backend over a fresh connection, as libpq would.

PostgreSQL's contract: the server closes a cancel connection once it has signalled the backend, and a
client (libpq's PQcancel, asyncpg) waits for that close before its next statement, or a late cancel
would hit that statement instead. So the proxy waits for the backend to close its cancel connection
before the agent's is closed.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from shared.controlplane import BackendRef
from shared.pg.wire import messages as m
from shared.pg.wire.constants import PROTOCOL_3_2

from .backend import BackendError, open_backend_stream

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CancelTarget:
    backend: BackendRef
    pid: int
    key: bytes
    # The session's own answer to a cancel, tried first: True when it handled it (a statement that waits
    # for approval has not reached the backend, so there is nothing there to cancel).
    intercept: Callable[[], bool] | None = None


def new_cancel_key(protocol: int) -> bytes:
    """4 bytes in protocol 3.0; 32 in 3.2, which allows up to 256 (as PostgreSQL 18 sends)."""
    return secrets.token_bytes(32 if protocol >= PROTOCOL_3_2 else 4)


class CancelRegistry:
    def __init__(self) -> None:
        self._targets: dict[int, list[tuple[bytes, CancelTarget]]] = {}

    def register(self, pid: int, key: bytes, target: CancelTarget) -> None:
        self._targets.setdefault(pid, []).append((key, target))

    def unregister(self, pid: int, key: bytes) -> None:
        entries = [e for e in self._targets.get(pid, []) if e[0] != key]
        if entries:
            self._targets[pid] = entries
        else:
            self._targets.pop(pid, None)

    def lookup(self, pid: int, key: bytes) -> CancelTarget | None:
        for candidate, target in self._targets.get(pid, []):
            if hmac.compare_digest(candidate, key):
                return target
        return None

    async def cancel(self, pid: int, key: bytes, timeout: float) -> bool:
        target = self.lookup(pid, key)
        if target is None:
            # Like the server: an unknown key is silently ignored (no oracle for guessing keys).
            log.info("cancel request with unknown key ignored", extra={"pid": pid})
            return False
        if target.intercept is not None and target.intercept():
            log.info("cancel request handled by the session (a held statement)", extra={"pid": pid})
            return True
        try:
            reader, writer, _ = await open_backend_stream(target.backend, timeout)
        except BackendError as e:
            log.warning("cancel: cannot reach backend: %s", e)
            return False
        try:
            writer.write(m.build_cancel_request(target.pid, target.key))
            await writer.drain()
            await asyncio.wait_for(_until_closed(reader), timeout)
        except (OSError, TimeoutError) as e:
            log.warning("cancel: the backend did not take the cancel request: %r", e, extra={"pid": pid})
            return False
        finally:
            writer.close()
        log.info("cancel request forwarded", extra={"pid": pid})
        return True


async def _until_closed(reader: asyncio.StreamReader) -> None:
    """Until the server closes the connection (it says nothing on a cancel connection)."""
    try:
        while await reader.read(4096):
            pass
    except (ConnectionError, ssl.SSLError):
        pass  # closed without ceremony (a reset, no TLS close_notify): closed all the same

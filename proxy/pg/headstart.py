"""A head start on the backend login: while authorize decides, the same agent's next login to the same
place is already under way.

Theory of operation. When a session was granted and its backend login succeeded, the proxy remembers,
until that grant expires, the login's *fingerprint* (SHA-256 over the agent's token and everything in
its StartupMessage: protocol, user, database name as sent, options and parameters) together with the
backend it reached (``BackendRef``) and the startup parameters it forwarded there. A new connection with
the same fingerprint (the same token, the same StartupMessage) starts that backend login at once (TCP,
TLS, StartupMessage with exactly those parameters, SCRAM), concurrently with authorize. So nothing that
new agent chose reaches the backend before it is authorized beyond what a session granted to the same
token sent before; a stranger, who holds no granted token, never starts one, and only a credential already
in the proxy's cache is used (no Secrets Manager call before authorization).

The login is adopted only if the new grant names exactly the same backend and the new verdict on the
startup settings forwards exactly the same parameters; otherwise (refusal, another target, a changed
policy, a failed head start) it is closed unused and the session logs in as it always does. The session
discards a head start it has not adopted whenever it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.controlplane import BackendRef
from shared.pg.wire import messages as m

from .backend import BackendConnection, BackendError

log = logging.getLogger(__name__)

Parameters = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class RememberedLogin:
    backend: BackendRef
    parameters: Parameters  # what the granted session forwarded, in order
    expires: float  # the grant's expiry (wall-clock seconds)


def login_fingerprint(token: str, startup: m.StartupMessage) -> bytes:
    """What makes two logins the same: the token and the whole StartupMessage."""
    digest = hashlib.sha256(token.encode())
    digest.update(startup.protocol.to_bytes(4, "big"))
    for name, value in startup.params.items():
        digest.update(b"\0" + name.encode() + b"\0" + value.encode())
    return digest.digest()


class HeadStarts:
    """The process's memory of granted logins (bounded, each entry until its grant expires)."""

    def __init__(self, limit: int = 1024, clock: Callable[[], float] = time.time) -> None:
        self._limit = limit
        self._clock = clock
        self._remembered: OrderedDict[bytes, RememberedLogin] = OrderedDict()

    def remember(
        self, fingerprint: bytes, backend: BackendRef, parameters: Mapping[str, str], expires_at: datetime
    ) -> None:
        self._remembered[fingerprint] = RememberedLogin(backend, tuple(parameters.items()), expires_at.timestamp())
        self._remembered.move_to_end(fingerprint)
        while len(self._remembered) > self._limit:
            self._remembered.popitem(last=False)

    def forget(self, fingerprint: bytes) -> None:
        self._remembered.pop(fingerprint, None)

    def recall(self, fingerprint: bytes) -> RememberedLogin | None:
        found = self._remembered.get(fingerprint)
        if found is not None and found.expires <= self._clock():
            del self._remembered[fingerprint]
            return None
        return found


class HeadStart:
    """One backend login started ahead of authorization (see the module docstring)."""

    def __init__(self, remembered: RememberedLogin, login: Coroutine[Any, Any, BackendConnection]) -> None:
        self.remembered = remembered
        self._task = asyncio.get_running_loop().create_task(login, name="airlock-backend-head-start")
        self._adopted = False

    async def adopt(self, backend: BackendRef, parameters: Mapping[str, str]) -> BackendConnection | None:
        """The started login if it is the one the grant calls for and it succeeded; None otherwise."""
        if backend != self.remembered.backend or tuple(parameters.items()) != self.remembered.parameters:
            self.discard()
            return None
        try:
            conn = await self._task
        except BackendError as e:
            log.info("backend head start failed (%s); logging in again", e)
            return None
        self._adopted = True
        return conn

    def discard(self) -> None:
        """Close the login unless it was adopted (idempotent)."""
        if self._adopted:
            return
        self._adopted = True  # nothing more to do with it
        if not self._task.done():
            self._task.cancel()  # connect_backend closes what it opened
            return
        if self._task.cancelled() or self._task.exception() is not None:
            return
        conn = self._task.result()
        with contextlib.suppress(Exception):
            conn.writer.write(m.TERMINATE)
        conn.writer.close()

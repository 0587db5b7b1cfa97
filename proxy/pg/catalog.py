"""The target's catalog for masking lineage, read over a side connection and kept fresh.

Theory of operation. Column rules follow lineage (shared/pg/masking/lineage.py), which needs to know what
a relation name means: a table's columns, a view's definition. One ``TargetCatalog`` per target database
and backend credential, shared by every session of the process, reads it with one query
(``CATALOG_QUERY``) over its own backend connection, kept open between reads. A snapshot is trusted for
``ttl`` seconds, and less when a session saw a statement that may change the schema (``invalidate``). A
session never waits for the catalog on its hot path: before a backend read that carries a
RowDescription or CopyOutResponse, and only when the snapshot is stale, the session holds its backend
side and awaits ``refresh`` (one read at a time, shared by every waiting session); a statement sent to
the backend starts the read early (``prefetch``), so the answer rarely waits.

Failure is closed: when the catalog cannot be read, ``snapshot`` is None and lineage through every
relation is unknown (those columns are masked whole) until a read succeeds; reads are retried no more
often than once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from shared.controlplane import BackendRef
from shared.pg.masking.catalog import CATALOG_QUERY, Catalog
from shared.pg.wire import messages as m
from shared.pg.wire.constants import PROTOCOL_3_0

from ..credentials import BackendCredential
from .backend import BackendConnection, BackendError, connect_backend
from .wire import PeerClosed

log = logging.getLogger(__name__)

_RETRY_SECONDS = 1.0
_MAX_MISSING = 1024
_STATEMENT_TIMEOUT_MS = 10_000


# A relation as a statement names it (schema or None, name) or as RowDescription does (its oid).
RelationKey = tuple[str | None, str] | int


def _has(snapshot: Catalog, relation: RelationKey) -> bool:
    if isinstance(relation, int):
        return snapshot.by_oid(relation) is not None
    return bool(snapshot.named(*relation))


class CatalogUnavailable(Exception):
    """The catalog could not be read (connection, authentication, an error from the server)."""


class TargetCatalog:
    """One target database's catalog (``snapshot``), refreshed on demand (see the module docstring)."""

    def __init__(
        self,
        ref: BackendRef,
        credential: Callable[[], Awaitable[BackendCredential]],
        *,
        ttl: float,
        timeout: float,
        max_message: int,
    ) -> None:
        self.ref = ref
        self._credential = credential
        self._ttl = ttl
        self._timeout = timeout
        self._max_message = max_message
        self._snapshot: Catalog | None = None
        self._generation = 0
        self._fresh_until = 0.0  # time.monotonic() until which the snapshot may be used
        # Relation names statements used that the snapshot lacks: asked for (the next read looks for them)
        # and, once a read did not find them either, missing (not looked for again until the TTL).
        self._asked: set[RelationKey] = set()
        self._missing: set[RelationKey] = set()
        self._wanted = 0  # bumped by invalidate(): a read that started earlier does not make it fresh
        self._reading: asyncio.Task[None] | None = None
        self._conn: BackendConnection | None = None

    @property
    def snapshot(self) -> Catalog | None:
        return self._snapshot

    def stale(self) -> bool:
        return time.monotonic() >= self._fresh_until

    def invalidate(self) -> None:
        self._wanted += 1
        self._fresh_until = 0.0

    def expect(self, relations: Iterable[tuple[str | None, str]]) -> None:
        """Statements on their way name these relations: if the snapshot lacks one (created elsewhere since
        it was read), read it again before their results need it. A relation one read did not find either
        is not looked for again until the snapshot expires (a typo does not cost a read per statement)."""
        self._look_for(relations)

    def _look_for(self, relations: Iterable[RelationKey]) -> None:
        snapshot = self._snapshot
        if snapshot is None:
            return
        unknown = {r for r in relations if r not in self._missing and not _has(snapshot, r)}
        if unknown:
            self._asked |= unknown
            self.invalidate()
            self.prefetch()

    def unknown_relation(self, oid: int) -> None:
        """A result came from a relation (by oid) the snapshot lacks: read it again, as ``expect`` does."""
        self._look_for([oid])

    def prefetch(self) -> None:
        """Start a read if the snapshot is stale and none is running (does not wait for it)."""
        if self.stale() and (self._reading is None or self._reading.done()):
            self._reading = asyncio.get_running_loop().create_task(self._read(), name="airlock-catalog")

    async def refresh(self) -> None:
        """Wait until the snapshot is fresh (or a read failed: the snapshot is then None). Never raises."""
        while self.stale():
            self.prefetch()
            reading = self._reading
            assert reading is not None
            await asyncio.shield(reading)
            if self._snapshot is None:
                return  # the read failed: fail closed now, retry later

    async def close(self) -> None:
        if self._reading is not None and not self._reading.done():
            self._reading.cancel()
            with contextlib.suppress(BaseException):
                await self._reading
        self._disconnect()

    async def _read(self) -> None:
        wanted = self._wanted
        asked, self._asked = self._asked, set()
        try:
            document = await self._query()
            self._generation += 1
            self._snapshot = snapshot = Catalog.from_json(document, self._generation)
            if len(self._missing) > _MAX_MISSING or not asked:
                self._missing.clear()
            self._missing |= {r for r in asked if not _has(snapshot, r)}
        except asyncio.CancelledError:
            raise
        except (CatalogUnavailable, BackendError, OSError, ValueError, TimeoutError) as e:
            log.error("masking catalog of %s/%s unavailable: %s", self.ref.host, self.ref.database, e)
            self._disconnect()
            self._snapshot = None
            self._fresh_until = time.monotonic() + _RETRY_SECONDS
            return
        if self._wanted == wanted:
            self._fresh_until = time.monotonic() + self._ttl

    async def _query(self) -> str:
        if self._conn is not None:
            try:
                return await self._ask(self._conn)
            except (CatalogUnavailable, OSError):  # the kept connection went away (idle timeout, restart)
                self._disconnect()
        return await self._ask(None)

    async def _ask(self, conn: BackendConnection | None) -> str:
        if conn is None:
            credential = await self._credential()
            conn = self._conn = await connect_backend(
                self.ref,
                credential,
                {"application_name": "airlock-masking-catalog"},
                PROTOCOL_3_0,
                timeout=self._timeout,
                max_message=self._max_message,
            )
        # An empty search_path makes pg_get_viewdef qualify every relation with its schema: lineage then
        # follows a view to exactly the relations it reads.
        setup = f"SET statement_timeout = {_STATEMENT_TIMEOUT_MS}; SET search_path = ''; "
        conn.writer.write(m.build_query(setup + CATALOG_QUERY))
        return await asyncio.wait_for(self._answer(conn), self._timeout + _STATEMENT_TIMEOUT_MS / 1000)

    async def _answer(self, conn: BackendConnection) -> str:
        document: str | None = None
        error: str | None = None
        while True:
            try:
                mtype, body, _ = await conn.messages.read_message()
            except PeerClosed as e:
                raise CatalogUnavailable("the target closed the catalog connection") from e
            if mtype == ord("D"):
                values = m.parse_data_row(body)
                if values and values[0] is not None:
                    document = values[0].decode("utf-8")
            elif mtype == ord("E"):
                fields = m.parse_error_fields(body)
                error = f"{fields.get('C', '')} {fields.get('M', '')}"
            elif mtype == ord("Z"):
                if error is not None or document is None:
                    raise CatalogUnavailable(error or "the catalog query returned nothing")
                return document

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.writer.close()
            self._conn = None


class TargetCatalogs:
    """The process's catalogs, one per target database and credential."""

    def __init__(self, credential: Callable[[str], Awaitable[BackendCredential]], *, ttl: float, timeout: float,
                 max_message: int) -> None:
        self._credential = credential
        self._ttl, self._timeout, self._max_message = ttl, timeout, max_message
        self._catalogs: dict[str, TargetCatalog] = {}

    def for_backend(self, ref: BackendRef) -> TargetCatalog:
        key = ref.model_dump_json()
        catalog = self._catalogs.get(key)
        if catalog is None:
            secret = ref.credential_secret
            catalog = self._catalogs[key] = TargetCatalog(
                ref,
                lambda: self._credential(secret),
                ttl=self._ttl,
                timeout=self._timeout,
                max_message=self._max_message,
            )
        return catalog

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._catalogs.values()), return_exceptions=True)
        self._catalogs.clear()


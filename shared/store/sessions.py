"""The sessions index: one DynamoDB item per recorded session (interface, records, pynamodb model).

The recording itself (chunks and the signed manifest in S3) is the evidence; this index is how people
and the sweeper *find* sessions: by id, by identity and time, by target and time, and by status (the
``active`` ones, and among those the ones whose proxy stopped heartbeating). Status moves one way:
``active`` -> ``closed`` | ``incomplete``; a ``refused`` item is written once and never changes. Every
transition out of ``active`` is a conditional write, so a proxy that closes late and the sweeper that
sealed its session as incomplete cannot both win.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from botocore.exceptions import BotoCoreError
from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import PutError, PynamoDBException, UpdateError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from shared.config import ControlPlaneSettings
from shared.store.base import NotFound, StoreError
from shared.store.dynamo import _bind, _storage

GENESIS_HEAD = "0" * 64


class SessionState(enum.StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"
    INCOMPLETE = "incomplete"
    REFUSED = "refused"


class SessionNotActive(StoreError):
    """A transition that needs an ``active`` session found it closed, sealed or missing."""


@dataclass(frozen=True, slots=True)
class SessionCounters:
    """What a proxy reports while it records: bytes each way, statements, chunks cut, chain head."""

    bytes_agent_to_proxy: int = 0
    bytes_proxy_to_agent: int = 0
    statements: int = 0
    chunks: int = 0
    chain_head: str = GENESIS_HEAD


@dataclass(frozen=True, slots=True)
class SessionRecord:
    session_id: str
    identity: str
    target: str
    database: str
    client_addr: str
    proxy_id: str
    started_at: datetime
    status: SessionState
    prefix: str = ""  # S3 prefix of the recording (sessions/dt=.../<id>/), "" if nothing is recorded
    retain_until: str = ""  # format_timestamp() of the Object Lock retention the recording carries
    mode: str = "buffered"
    policy_version: str = ""
    ended_at: datetime | None = None
    last_heartbeat: datetime | None = None
    counters: SessionCounters = field(default_factory=SessionCounters)
    manifest_key: str = ""
    reason: str = ""  # why it ended (or was refused)

    @property
    def duration_seconds(self) -> float | None:
        return (self.ended_at - self.started_at).total_seconds() if self.ended_at else None


class SessionIndex(Protocol):
    def open(self, record: SessionRecord) -> None:
        """Create the ``active`` item; ``StoreError`` if one with this id exists already."""
        ...

    def heartbeat(self, session_id: str, proxy_id: str, counters: SessionCounters) -> None:
        """Refresh ``last_heartbeat`` and the counters; ``SessionNotActive`` once it was closed/sealed."""
        ...

    def close(
        self,
        session_id: str,
        status: SessionState,
        *,
        manifest_key: str,
        counters: SessionCounters,
        reason: str = "",
        ended_at: datetime | None = None,
    ) -> None:
        """Finalise an ``active`` session as closed or incomplete; ``SessionNotActive`` otherwise."""
        ...

    def refused(self, record: SessionRecord) -> None:
        """Store a refused connection (an item with status ``refused``)."""
        ...

    def get(self, session_id: str) -> SessionRecord:
        """The session's item; ``NotFound`` if there is none."""
        ...

    def query_by_identity(
        self, identity: str, since: datetime | None = None, limit: int = 100
    ) -> list[SessionRecord]: ...

    def query_by_target(self, target: str, since: datetime | None = None, limit: int = 100) -> list[SessionRecord]: ...

    def query_by_status(
        self, status: SessionState, since: datetime | None = None, limit: int = 100
    ) -> list[SessionRecord]: ...

    def active(self, limit: int = 100) -> list[SessionRecord]: ...

    def stale_active(self, older_than: datetime, limit: int = 100) -> list[SessionRecord]:
        """Active sessions whose last heartbeat is before ``older_than`` (their proxy is gone)."""
        ...


# ---------------------------------------------------------------- DynamoDB


class _ByIdentity(GlobalSecondaryIndex["_SessionItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-identity"
        projection = AllProjection()

    identity = UnicodeAttribute(hash_key=True)
    started_at = UTCDateTimeAttribute(range_key=True)


class _ByTarget(GlobalSecondaryIndex["_SessionItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-target"
        projection = AllProjection()

    target = UnicodeAttribute(hash_key=True)
    started_at = UTCDateTimeAttribute(range_key=True)


class _ByStatus(GlobalSecondaryIndex["_SessionItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    started_at = UTCDateTimeAttribute(range_key=True)


class _SessionItem(Model):
    class Meta:
        table_name = "unbound"

    session_id = UnicodeAttribute(hash_key=True)
    identity = UnicodeAttribute()
    target = UnicodeAttribute()
    database = UnicodeAttribute()
    client_addr = UnicodeAttribute()
    proxy_id = UnicodeAttribute()
    # UTCDateTimeAttribute is a fixed-width string, so it sorts in time order as a GSI range key.
    started_at = UTCDateTimeAttribute()
    status = UnicodeAttribute()
    prefix = UnicodeAttribute(null=True)
    retain_until = UnicodeAttribute(null=True)
    mode = UnicodeAttribute(null=True)
    policy_version = UnicodeAttribute(null=True)
    ended_at = UTCDateTimeAttribute(null=True)
    last_heartbeat = UTCDateTimeAttribute(null=True)
    bytes_agent_to_proxy = NumberAttribute(default=0)
    bytes_proxy_to_agent = NumberAttribute(default=0)
    statements = NumberAttribute(default=0)
    chunks = NumberAttribute(default=0)
    chain_head = UnicodeAttribute(null=True)
    manifest_key = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    by_identity = _ByIdentity()
    by_target = _ByTarget()
    by_status = _ByStatus()


def _conditional_failed(e: PynamoDBException) -> bool:
    return getattr(e, "cause_response_code", None) == "ConditionalCheckFailedException"


class DynamoSessionIndex:
    def __init__(self, settings: ControlPlaneSettings) -> None:
        self._m = _bind(_SessionItem, settings.sessions_table, settings.region)

    def warm(self) -> None:
        """Create the DynamoDB client now rather than at the first write (a long-lived process calls
        this at start-up, so the client's service model is frozen out of the garbage collector)."""
        self._m._get_connection().connection.client  # noqa: B018 - the property creates the client

    def open(self, record: SessionRecord) -> None:
        self._put(record, "opening session")

    def refused(self, record: SessionRecord) -> None:
        self._put(record, "recording refused session")

    def _put(self, record: SessionRecord, what: str) -> None:
        c = record.counters
        item = self._m(
            record.session_id,
            identity=record.identity,
            target=record.target,
            database=record.database,
            client_addr=record.client_addr,
            proxy_id=record.proxy_id,
            started_at=record.started_at,
            status=record.status.value,
            prefix=record.prefix or None,
            retain_until=record.retain_until or None,
            mode=record.mode,
            policy_version=record.policy_version or None,
            ended_at=record.ended_at,
            last_heartbeat=record.last_heartbeat or _now(),
            bytes_agent_to_proxy=c.bytes_agent_to_proxy,
            bytes_proxy_to_agent=c.bytes_proxy_to_agent,
            statements=c.statements,
            chunks=c.chunks,
            chain_head=c.chain_head,
            manifest_key=record.manifest_key or None,
            reason=record.reason or None,
        )
        try:
            # A session id is never reused: a second put with the same id is a bug, not an update.
            item.save(condition=self._m.session_id.does_not_exist())
        except PutError as e:
            if _conditional_failed(e):
                raise StoreError(f"{what} failed: session {record.session_id} exists already") from e
            raise StoreError(f"{what} failed ({e.cause_response_code or 'PutError'})") from e
        except BotoCoreError as e:
            raise StoreError(f"{what} failed ({e.__class__.__name__})") from e

    def heartbeat(self, session_id: str, proxy_id: str, counters: SessionCounters) -> None:
        m = self._m
        self._update(
            session_id,
            "heartbeat",
            [m.last_heartbeat.set(_now()), m.proxy_id.set(proxy_id), *self._counter_actions(counters)],
        )

    def close(
        self,
        session_id: str,
        status: SessionState,
        *,
        manifest_key: str,
        counters: SessionCounters,
        reason: str = "",
        ended_at: datetime | None = None,
    ) -> None:
        if status not in (SessionState.CLOSED, SessionState.INCOMPLETE):
            raise ValueError(f"a session is closed as closed or incomplete, not {status}")
        m = self._m
        actions = [
            m.status.set(status.value),
            m.ended_at.set(ended_at or _now()),
            m.manifest_key.set(manifest_key),
            *self._counter_actions(counters),
        ]
        if reason:
            actions.append(m.reason.set(reason))
        self._update(session_id, "closing session", actions)

    def _counter_actions(self, c: SessionCounters) -> list[object]:
        m = self._m
        return [
            m.bytes_agent_to_proxy.set(c.bytes_agent_to_proxy),
            m.bytes_proxy_to_agent.set(c.bytes_proxy_to_agent),
            m.statements.set(c.statements),
            m.chunks.set(c.chunks),
            m.chain_head.set(c.chain_head),
        ]

    def _update(self, session_id: str, what: str, actions: list[object]) -> None:
        m = self._m
        try:
            m(session_id).update(
                actions=actions,  # type: ignore[arg-type]
                condition=m.session_id.exists() & (m.status == SessionState.ACTIVE.value),
            )
        except UpdateError as e:
            if _conditional_failed(e):
                raise SessionNotActive(f"{what}: session {session_id} is not active") from e
            raise StoreError(f"{what} failed ({e.cause_response_code or 'UpdateError'})") from e
        except BotoCoreError as e:
            raise StoreError(f"{what} failed ({e.__class__.__name__})") from e

    def get(self, session_id: str) -> SessionRecord:
        with _storage("reading session"):
            try:
                return _record(self._m.get(session_id, consistent_read=True))
            except self._m.DoesNotExist as e:
                raise NotFound(f"no session {session_id}") from e

    def query_by_identity(self, identity: str, since: datetime | None = None, limit: int = 100) -> list[SessionRecord]:
        m = self._m
        cond = m.started_at >= since if since else None
        with _storage("querying sessions by identity"):
            return _records(m.by_identity.query(identity, cond, scan_index_forward=False, limit=limit), limit)

    def query_by_target(self, target: str, since: datetime | None = None, limit: int = 100) -> list[SessionRecord]:
        m = self._m
        cond = m.started_at >= since if since else None
        with _storage("querying sessions by target"):
            return _records(m.by_target.query(target, cond, scan_index_forward=False, limit=limit), limit)

    def query_by_status(
        self, status: SessionState, since: datetime | None = None, limit: int = 100
    ) -> list[SessionRecord]:
        m = self._m
        cond = m.started_at >= since if since else None
        with _storage("querying sessions by status"):
            return _records(m.by_status.query(status.value, cond, scan_index_forward=False, limit=limit), limit)

    def active(self, limit: int = 100) -> list[SessionRecord]:
        return self.query_by_status(SessionState.ACTIVE, limit=limit)

    def stale_active(self, older_than: datetime, limit: int = 100) -> list[SessionRecord]:
        m = self._m
        with _storage("querying stale sessions"):
            # Oldest first: the longest-dead proxies are sealed first if a run cannot do them all.
            found = m.by_status.query(
                SessionState.ACTIVE.value,
                filter_condition=m.last_heartbeat < older_than,
                scan_index_forward=True,
            )
            return _records(found, limit)


def _records(items: Iterable[_SessionItem], limit: int) -> list[SessionRecord]:
    out: list[SessionRecord] = []
    for item in items:
        out.append(_record(item))
        if len(out) >= limit:
            break
    return out


def _record(item: _SessionItem) -> SessionRecord:
    return SessionRecord(
        session_id=item.session_id,
        identity=item.identity,
        target=item.target,
        database=item.database,
        client_addr=item.client_addr,
        proxy_id=item.proxy_id,
        started_at=item.started_at,
        status=SessionState(item.status),
        prefix=item.prefix or "",
        retain_until=item.retain_until or "",
        mode=item.mode or "buffered",
        policy_version=item.policy_version or "",
        ended_at=item.ended_at,
        last_heartbeat=item.last_heartbeat,
        counters=SessionCounters(
            bytes_agent_to_proxy=int(item.bytes_agent_to_proxy or 0),
            bytes_proxy_to_agent=int(item.bytes_proxy_to_agent or 0),
            statements=int(item.statements or 0),
            chunks=int(item.chunks or 0),
            chain_head=item.chain_head or GENESIS_HEAD,
        ),
        manifest_key=item.manifest_key or "",
        reason=item.reason or "",
    )


def _now() -> datetime:
    return datetime.now(UTC)

"""Data-access interfaces for the control plane, and the domain errors they raise.

Callers see records and ``StoreError``s only; which database sits behind (DynamoDB via pynamodb in
``shared.store.dynamo``) is an implementation detail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.policy import Policy


class StoreError(Exception):
    """Storage failed (unreachable, throttled, misconfigured). Callers fail closed."""


class NotFound(StoreError):
    """The requested item does not exist."""


class VersionConflict(StoreError):
    """A conditional write lost a race (e.g. two policy pushes picked the same version)."""


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    name: str
    revoked: bool = False
    revoked_at: datetime | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: str
    identity: str
    secret_hash: str
    created_at: datetime
    expires_at: datetime
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    version: int
    policy: Policy
    pushed_at: datetime


class IdentityStore(Protocol):
    def get(self, name: str) -> IdentityRecord:
        """The identity's status; a never-revoked identity has no item and reads as not revoked."""
        ...

    def revoke(self, name: str, reason: str) -> IdentityRecord: ...

    def reinstate(self, name: str) -> IdentityRecord: ...

    def list_all(self) -> list[IdentityRecord]: ...


class ApiKeyStore(Protocol):
    def put(self, record: ApiKeyRecord) -> None: ...

    def get(self, key_id: str) -> ApiKeyRecord:
        """The key's record; ``NotFound`` if there is none."""
        ...

    def revoke_all_for(self, identity: str) -> int:
        """Revoke every key of ``identity``; returns how many were revoked."""
        ...


class PolicyStore(Protocol):
    def push(self, policy_name: str, yaml_text: str, policy: Policy) -> int:
        """Store a new version and return its number (monotonic, never reused)."""
        ...

    def latest(self, policy_name: str) -> PolicyVersion:
        """The newest version; ``NotFound`` if none was pushed."""
        ...

"""Data access for the control plane: interfaces, records, domain errors, DynamoDB implementations."""

from shared.store.base import (
    ApiKeyRecord,
    ApiKeyStore,
    IdentityRecord,
    IdentityStore,
    NotFound,
    PolicyStore,
    PolicyVersion,
    StoreError,
    VersionConflict,
)

__all__ = [
    "ApiKeyRecord",
    "ApiKeyStore",
    "IdentityRecord",
    "IdentityStore",
    "NotFound",
    "PolicyStore",
    "PolicyVersion",
    "StoreError",
    "VersionConflict",
]

"""A short-lived cache of the latest policy: warm Lambdas skip a DynamoDB query per connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from shared.policy import Policy
from shared.store.base import PolicyStore, PolicyVersion


class CachedPolicyStore:
    """A ``PolicyStore`` whose ``latest`` is cached for ``ttl_seconds`` (pushes invalidate it)."""

    def __init__(
        self, inner: PolicyStore, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._inner = inner
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: dict[str, tuple[float, PolicyVersion]] = {}

    def push(self, policy_name: str, yaml_text: str, policy: Policy) -> int:
        version = self._inner.push(policy_name, yaml_text, policy)
        with self._lock:
            self._cached.pop(policy_name, None)
        return version

    def latest(self, policy_name: str) -> PolicyVersion:
        now = self._clock()
        with self._lock:
            hit = self._cached.get(policy_name)
            if hit and now - hit[0] < self._ttl:
                return hit[1]
        # Errors are not cached: the next call retries storage (and fails closed meanwhile).
        found = self._inner.latest(policy_name)
        with self._lock:
            self._cached[policy_name] = (now, found)
        return found

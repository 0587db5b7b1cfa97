"""Masked rows remembered across sessions: masking is a pure function of (policy, key, columns, row).

Agents re-read the same rows, often from several sessions at once, so the proxy keeps one ``RowMemo``
per process (``SHARED``) that every ``ResultMasker`` consults before masking a DataRow. Entries are keyed
by a *space* (8 bytes standing for one masker identity and one result shape: RowDescription and lineage)
followed by the row's bytes. The identity is a SHA-256 over the policy's canonical JSON and a SHA-256 of
the token key, so two policies or two keys never share an entry, and no key is ever held in clear. Space
numbers only grow: when the table of spaces is reset, old entries become unreachable and age out, never
mix.

Bounded by bytes (an estimate of what an entry holds, overhead included) and evicted first in, first out;
the proxy runs masking on one event-loop thread, so there are no locks. An entry also keeps what the row
counted (one name per masked value), so a session served from the memo counts what it was sent.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import deque
from collections.abc import Callable, Hashable

from shared.masking.rules import MaskingPolicy

SHARED_BUDGET = 32 << 20  # bytes, for the whole process
_ENTRY_OVERHEAD = 256  # dict slot, FIFO slot, entry and names tuples, object headers: roughly, per entry
_MAX_SPACES = 4096

# Keys are bytes (the space's prefix, then the DataRow body) and the FIFO holds keys only: an entry adds
# one tuple to what the garbage collector tracks, not three.
Entry = tuple[bytes | None, tuple[str, ...]]  # (new DataRow or None for "unchanged", names counted)


def identity(policy: MaskingPolicy, token_key: bytes | None) -> bytes:
    """What makes two maskers give the same output for the same row: the policy and the key."""
    canonical = json.dumps(policy.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    key_digest = hashlib.sha256(token_key or b"").digest()
    return hashlib.sha256(canonical.encode() + b"\0" + key_digest).digest()


class RowMemo:
    """Masked DataRows by key, bounded by ``budget`` bytes, oldest out first."""

    __slots__ = ("_budget", "_items", "_largest", "_order", "_serials", "_size", "_spaces", "get")

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._largest = budget >> 4  # the largest entry worth keeping
        self._items: dict[bytes, Entry] = {}
        self._order: deque[bytes] = deque()
        self._size = 0
        self._spaces: dict[tuple[bytes, Hashable], bytes] = {}
        self._serials = itertools.count()
        self.get: Callable[[bytes], Entry | None] = self._items.get  # a hit is one C call

    @property
    def size(self) -> int:
        """Bytes held, by the estimate the budget bounds."""
        return self._size

    def space(self, identity: bytes, result: Hashable) -> bytes:
        """The key prefix of one masker identity and one result shape (RowDescription and lineage)."""
        key = (identity, result)
        space = self._spaces.get(key)
        if space is None:
            if len(self._spaces) >= _MAX_SPACES:
                self._spaces.clear()
            space = self._spaces[key] = next(self._serials).to_bytes(8, "big")
        return space

    def put(self, key: bytes, entry: Entry) -> None:
        """Remember ``entry`` for ``key`` (its space prefix and a DataRow body)."""
        size = len(key) + len(entry[0] or b"") + _ENTRY_OVERHEAD
        items = self._items
        if size > self._largest or key in items:
            return  # huge rows are not worth keeping (and a zero budget keeps nothing)
        items[key] = entry
        self._order.append(key)
        self._size = held = self._size + size
        if held > self._budget:
            self._evict()

    def _evict(self) -> None:
        items, order = self._items, self._order
        while self._size > self._budget:
            old = order.popleft()
            self._size -= len(old) + len(items.pop(old)[0] or b"") + _ENTRY_OVERHEAD


SHARED = RowMemo(SHARED_BUDGET)

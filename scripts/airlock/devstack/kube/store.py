"""In-memory object storage with one global resourceVersion, a bounded change history and watch fan-out.

Theory of operation: like etcd behind the API server, every committed change (ADDED, MODIFIED, DELETED)
takes the next revision, which becomes the object's ``metadata.resourceVersion``; a list is consistent at
the current revision. The last ``history_limit`` changes are kept, so a watch may start from any
revision still in that window; older ones get 410 Expired, as a compacted etcd answers. Live watchers get
each change as it commits; a watcher that falls ``queue_limit`` changes behind is closed (the client
re-lists), never allowed to grow memory without bound. Everything runs on one event loop: no locks.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .kinds import ResourceType
from .status import already_exists, expired, not_found

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change: ``previous`` is the object before it (None for ADDED)."""

    revision: int
    type_key: str
    type: str  # ADDED, MODIFIED, DELETED
    object: Obj
    previous: Obj | None

    @property
    def namespace(self) -> str:
        return str(self.object.get("metadata", {}).get("namespace", ""))


@dataclass(eq=False)
class Watcher:
    """A live subscription to one type (optionally one namespace); read with :meth:`next`."""

    type_key: str
    namespace: str
    queue_limit: int
    pending: deque[Change] = field(default_factory=deque)
    closed: bool = False
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, change: Change) -> None:
        if self.closed or change.type_key != self.type_key:
            return
        if self.namespace and change.namespace != self.namespace:
            return
        if len(self.pending) >= self.queue_limit:
            self.close()
            return
        self.pending.append(change)
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def next(self, timeout: float) -> Change | None:
        """The next change; None when closed or after ``timeout`` seconds without one."""
        if not self.pending and not self.closed:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return None
        if self.pending:
            return self.pending.popleft()
        return None


class Store:
    def __init__(self, history_limit: int = 4096, queue_limit: int = 4096) -> None:
        self.revision = 1
        self._objects: dict[tuple[str, str, str], Obj] = {}
        self._history: deque[Change] = deque(maxlen=history_limit)
        self._watchers: set[Watcher] = set()
        self._queue_limit = queue_limit

    # ------------------------------------------------------------------ reads

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        found = self._objects.get((rt.key, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def require(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        found = self.get(rt, namespace, name)
        if found is None:
            raise not_found(rt, name)
        return found

    def objects(self, rt: ResourceType, namespace: str = "") -> list[Obj]:
        """Objects of ``rt`` (in ``namespace`` when given), ordered by namespace then name, as etcd keys sort."""
        keys = sorted(k for k in self._objects if k[0] == rt.key and (not namespace or k[1] == namespace))
        return [copy.deepcopy(self._objects[k]) for k in keys]

    def changes_since(self, rt: ResourceType, revision: int) -> list[Change]:
        """Changes to ``rt`` after ``revision``; 410 Expired if the history no longer reaches back that far."""
        oldest = self._history[0].revision if self._history else self.revision + 1
        if revision < oldest - 1 and revision < self.revision:
            raise expired(f"too old resource version: {revision} ({oldest - 1})")
        return [c for c in self._history if c.revision > revision and c.type_key == rt.key]

    def watch(self, rt: ResourceType, namespace: str = "") -> Watcher:
        watcher = Watcher(rt.key, namespace, self._queue_limit)
        self._watchers.add(watcher)
        return watcher

    def stop_watching(self, watcher: Watcher) -> None:
        watcher.close()
        self._watchers.discard(watcher)

    def namespaced_objects(self, namespace: str) -> Iterator[tuple[str, str]]:
        """(type key, name) of every object in ``namespace``."""
        for type_key, ns, name in list(self._objects):
            if ns == namespace:
                yield type_key, name

    # ------------------------------------------------------------------ writes

    def create(self, rt: ResourceType, obj: Obj) -> Obj:
        meta = obj["metadata"]
        key = (rt.key, str(meta.get("namespace", "")), str(meta["name"]))
        if key in self._objects:
            raise already_exists(rt, key[2])
        return self._commit(rt, key, "ADDED", obj, None)

    def update(self, rt: ResourceType, obj: Obj) -> Obj:
        meta = obj["metadata"]
        key = (rt.key, str(meta.get("namespace", "")), str(meta["name"]))
        previous = self._objects.get(key)
        if previous is None:
            raise not_found(rt, key[2])
        return self._commit(rt, key, "MODIFIED", obj, previous)

    def delete(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        key = (rt.key, namespace, name)
        previous = self._objects.get(key)
        if previous is None:
            raise not_found(rt, name)
        final = copy.deepcopy(previous)
        return self._commit(rt, key, "DELETED", final, previous)

    def _commit(self, rt: ResourceType, key: tuple[str, str, str], kind: str, obj: Obj, previous: Obj | None) -> Obj:
        self.revision += 1
        stored = copy.deepcopy(obj)
        stored.setdefault("metadata", {})["resourceVersion"] = str(self.revision)
        if kind == "DELETED":
            self._objects.pop(key, None)
        else:
            self._objects[key] = stored
        change = Change(self.revision, rt.key, kind, stored, previous)
        self._history.append(change)
        for watcher in list(self._watchers):
            watcher.offer(change)
            if watcher.closed:
                self._watchers.discard(watcher)
        return copy.deepcopy(stored)

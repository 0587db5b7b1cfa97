"""Watch streams: chunked JSON events (``{"type": ..., "object": ...}`` one per line), as the API server sends.

Theory of operation: the watcher subscribes before anything is read, so no change can fall between the
initial state and the live stream (everything runs on one event loop). The start depends on
``resourceVersion``: unset or ``0`` sends the current objects as synthetic ADDED events first; a revision
replays the changes after it from history (too old: an ERROR event with a 410 Expired Status ends the
stream); ``sendInitialEvents=true`` (with ``resourceVersionMatch=NotOlderThan`` and bookmarks) sends the
current objects then a BOOKMARK annotated ``k8s.io/initial-events-end``. Selectors apply to both sides of
a change: an object that stops matching is sent as DELETED, one that starts matching as ADDED. With
``allowWatchBookmarks`` a BOOKMARK carrying the current revision goes out every ``bookmark_interval``
seconds. The stream ends at ``timeoutSeconds``, when the client leaves, or when the watcher falls too far
behind (the client then re-lists, as with a real server).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .kinds import ResourceType
from .negotiation import Representation
from .status import ApiError, Cause, bad_request
from .store import Change, Store
from .tables import to_table

Obj = dict[str, Any]
DEFAULT_TIMEOUT = 1800
_TRUE = ("1", "true", "True", "TRUE", "t", "T")


@dataclass(frozen=True, slots=True)
class WatchRequest:
    rt: ResourceType
    namespace: str
    matches: Callable[[Obj], bool]
    representation: Representation
    resource_version: str
    bookmarks: bool
    initial_events: bool
    timeout: float
    include_object: str


def watch_request(rt: ResourceType, namespace: str, query: Any, matches: Callable[[Obj], bool],
                  representation: Representation) -> WatchRequest:
    initial = query.get("sendInitialEvents", "") in _TRUE
    match = query.get("resourceVersionMatch", "")
    bookmarks = query.get("allowWatchBookmarks", "") in _TRUE
    causes = []
    if initial and match != "NotOlderThan":
        causes.append(Cause("FieldValueForbidden", "Forbidden: sendInitialEvents requires setting "
                            "resourceVersionMatch to NotOlderThan", "resourceVersionMatch"))
    if initial and not bookmarks:
        causes.append(Cause("FieldValueForbidden", "Forbidden: sendInitialEvents requires setting "
                            "allowWatchBookmarks to true", "allowWatchBookmarks"))
    if match and not initial and "sendInitialEvents" not in query:
        causes.append(Cause("FieldValueForbidden", "Forbidden: resourceVersionMatch is forbidden for watch "
                            "unless sendInitialEvents is provided", "resourceVersionMatch"))
    if causes:
        text = "; ".join(f"{c.field}: {c.message}" for c in causes)
        raise ApiError(422, "Invalid", f'ListOptions.meta.k8s.io "" is invalid: {text}',
                       {"kind": "ListOptions", "group": "meta.k8s.io", "causes": [c.to_json() for c in causes]})
    timeout = DEFAULT_TIMEOUT
    if query.get("timeoutSeconds"):
        try:
            timeout = max(0, int(query["timeoutSeconds"]))
        except ValueError as e:
            raise bad_request(f'invalid value "{query["timeoutSeconds"]}" for timeoutSeconds') from e
    return WatchRequest(rt, namespace, matches, representation, query.get("resourceVersion", ""), bookmarks,
                        initial, float(timeout), query.get("includeObject", ""))


class WatchStream:
    def __init__(self, store: Store, request: WatchRequest, bookmark_interval: float) -> None:
        self.store = store
        self.request = request
        self.bookmark_interval = bookmark_interval
        self._headers_sent = False

    def _event(self, kind: str, obj: Obj) -> bytes:
        rt = self.request.rt
        body: Obj
        convert = self.request.representation.convert
        if convert.startswith("PartialObjectMetadata") and kind != "ERROR":
            body = {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{self.request.representation.version}",
                    "metadata": obj.get("metadata", {})}
        elif convert == "Table" and kind in ("ADDED", "MODIFIED", "DELETED"):
            meta = obj.get("metadata", {})
            body = to_table(rt, [obj], {"resourceVersion": meta.get("resourceVersion", "")},
                            include_object=self.request.include_object, no_headers=self._headers_sent,
                            version=self.request.representation.version)
            self._headers_sent = True
        else:
            body = obj
        return (json.dumps({"type": kind, "object": body}, separators=(",", ":")) + "\n").encode()

    def _bookmark(self, annotations: dict[str, str] | None = None) -> bytes:
        rt = self.request.rt
        meta: Obj = {"resourceVersion": str(self.store.revision)}
        if annotations:
            meta["annotations"] = annotations
        return self._event("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta})

    def _translate(self, change: Change) -> bytes | None:
        matches = self.request.matches
        now = matches(change.object)
        before = change.previous is not None and matches(change.previous)
        if change.type == "ADDED":
            return self._event("ADDED", change.object) if now else None
        if change.type == "DELETED":
            return self._event("DELETED", change.object) if before or now else None
        if now and before:
            return self._event("MODIFIED", change.object)
        if now:
            return self._event("ADDED", change.object)
        if before:
            return self._event("DELETED", change.object)
        return None

    async def serve(self, request: web.Request) -> web.StreamResponse:
        rt, store = self.request.rt, self.store
        watcher = store.watch(rt, self.request.namespace)
        try:
            opening = self._opening()
            response = web.StreamResponse(headers={"Content-Type": self.request.representation.content_type})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for chunk in opening:
                await response.write(chunk)
            if opening and opening[-1].startswith(b'{"type":"ERROR"'):
                return response
            deadline = time.monotonic() + self.request.timeout
            next_bookmark = time.monotonic() + self.bookmark_interval
            while True:
                now = time.monotonic()
                if now >= deadline or watcher.closed:
                    break
                transport = request.transport
                if transport is None or transport.is_closing():
                    break
                wait = min(deadline, next_bookmark if self.request.bookmarks else deadline, now + 1.0) - now
                change = await watcher.next(max(wait, 0.01))
                if change is not None:
                    event = self._translate(change)
                    if event is not None:
                        await response.write(event)
                elif self.request.bookmarks and time.monotonic() >= next_bookmark:
                    await response.write(self._bookmark())
                    next_bookmark = time.monotonic() + self.bookmark_interval
            await response.write_eof()
            return response
        finally:
            store.stop_watching(watcher)

    def _opening(self) -> list[bytes]:
        """Initial events, computed synchronously right after subscribing."""
        rt, store, version = self.request.rt, self.store, self.request.resource_version
        if self.request.initial_events or version in ("", "0"):
            events = [self._event("ADDED", obj) for obj in store.objects(rt, self.request.namespace)
                      if self.request.matches(obj)]
            if self.request.initial_events:
                events.append(self._bookmark({"k8s.io/initial-events-end": "true"}))
            return events
        try:
            revision = int(version)
        except ValueError as e:
            raise bad_request(f'invalid resource version: strconv.ParseUint: parsing "{version}": invalid '
                              "syntax") from e
        try:
            changes = store.changes_since(rt, revision)
        except ApiError as e:
            return [(json.dumps({"type": "ERROR", "object": e.status}, separators=(",", ":")) + "\n").encode()]
        return [event for change in changes
                if (not self.request.namespace or change.namespace == self.request.namespace)
                and (event := self._translate(change)) is not None]

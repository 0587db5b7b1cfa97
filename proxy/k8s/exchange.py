"""One API request through the gateway: read, judge, record, hold, forward, mask the answer.

Theory of operation, per request (an *exchange* of its session, numbered from 1):
  read     the request target is decoded as the API server decodes it (``shared.k8s.requestinfo``); a
           path with an empty, ``.`` or ``..`` segment is not read at all (a server or proxy in between
           may normalise it into another resource); the body (bounded) is decoded from JSON, YAML or
           protobuf (``shared.k8s.body``).
  judge    ``KubernetesJudge``: one verdict for the request and everything its body asks of a pod.
  record   the request head (``Authorization`` redacted) and its body, masked and redacted for storage,
           then a REQUEST decision with the request-info and verdict; discovery and OpenAPI are recorded
           at lower detail (heads and sizes, not the documents).
  decide   deny: a 403 Status naming the rule. hold: the request waits for an approval (``holds``).
           Strict recording: the request's events are durable before it is forwarded.
  forward  with the gateway's credential and the agent's impersonation (``upstream``); exec, attach and
           port-forward upgrades go to the stream relays (``relay_ws``, ``relay_spdy``).
  answer   by what the answer may hold (``_plan``): API objects are read as JSON (Accept was rewritten
           so the cluster answers JSON; for Secrets and ConfigMaps anything else is refused, never passed
           on) and masked (``shared.k8s.objects``: Secret values redacted, every string through the
           detectors), watch streams event by event; pod logs through the stream masker; a TokenRequest
           passes to the agent but is redacted in the recording; what is no API object (a pod's proxy
           answer) and everything when the session's masking is off streams through as it comes. What
           is recorded is what was sent (as PostgreSQL results are: what crossed the agent-side wire).
           Streams (watches, followed logs) are *live*: the session can end them
           (revocation: a watch gets an ERROR event with the reason).
Every exchange ends with an EXCHANGE_END decision and one audit line.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from shared.guard.verdict import Action
from shared.k8s import recorded
from shared.k8s import status as k8s_status
from shared.k8s.body import DecodedBody, decode_body
from shared.k8s.judge import KubeRequest, Verdict
from shared.k8s.negotiation import is_json, is_watch, maskable_accept
from shared.k8s.objects import MASKED_KINDS, hint_kind
from shared.k8s.requestinfo import RequestInfo, TargetError, decode_target, request_info
from shared.k8s.streams import Recorded
from shared.k8s.watch import WatchFramer, WatchStreamError
from shared.masking.stream import StreamMasker
from shared.recording.format import Direction, EventKind

from ..recording import RecordingUnavailable
from .holds import hold
from .sessions import GatewayRefusal, K8sSession
from .upstream import UpstreamError, Upstreams, response_headers, upstream_headers

log = logging.getLogger(__name__)

Obj = dict[str, Any]
MAX_APPROVAL_BODY = 4000
SMALL_RESPONSE = 1 << 20  # read whole and answered with a Content-Length below this
CONNECT_UPGRADES = frozenset({"exec", "attach", "portforward"})
# Subresources that answer with API objects (the rest proxy what a pod or node says).
OBJECT_SUBRESOURCES = frozenset({"", "status", "scale", "ephemeralcontainers", "resize", "approval", "binding",
                                 "eviction"})  # fmt: skip
_JSON_SEPARATORS = (",", ":")


def dumps(value: Any) -> bytes:
    """JSON as the API server writes it: compact, UTF-8, a newline at the end."""
    return json.dumps(value, separators=_JSON_SEPARATORS, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"


def status_response(status: Obj, headers: CIMultiDict[str] | None = None) -> web.Response:
    response = web.Response(status=int(status.get("code", 500)), body=dumps(status), content_type="application/json")
    for name, value in (headers or {}).items():
        response.headers.add(name, value)
    return response


class Exchange:
    """One request of a session (see the module docstring); ``run`` answers it."""

    def __init__(self, session: K8sSession, request: web.Request, target: str) -> None:
        self.session = session
        self.request = request
        self.target = target  # origin-form path and query, as the cluster will get it
        text = session.text_masker
        # As recorded, audited and shown to approvers: query values (an exec command line) masked.
        self.shown_target = recorded.masked_target(target, text.mask) if text is not None else target
        self.number = session.begin()
        self.started = time.monotonic()
        self.masker = session.object_masker()
        self.status = 0
        self.bytes_out = 0
        self.items: int | None = None
        self.verdict: Verdict | None = None
        self.ending: Obj | None = None  # set when the session ends this exchange's stream
        self.end_reason = ""
        self.detail = "full"
        self._upstream: aiohttp.ClientResponse | None = None
        self._closers: list[Any] = []

    # ------------------------------------------------------------------ flow

    async def run(self) -> web.StreamResponse:
        try:
            response = await self._run()
            self.status = self.status or response.status
            return response
        except GatewayRefusal as e:
            return self._answer_status(e.status)
        except asyncio.CancelledError:
            self.end_reason = self.end_reason or "the agent went away"
            raise
        finally:
            self.session.live.discard(self)
            self.session.end()
            self.session.touch()  # the session may be idle now: let its supervisor look
            self._finish()

    async def _run(self) -> web.StreamResponse:
        request = self.request
        method = request.method
        try:
            path, query = decode_target(self.target)
            target_error = _segment_error(path)
        except TargetError as e:
            path, query, target_error = self.target.partition("?")[0], {}, str(e)
        info = request_info(method, path, query)
        upgrade = _upgrade(request)
        raw = b"" if upgrade else await self._read_body()
        body = decode_body(request.headers.get("Content-Type"), raw,
                           content_encoding=request.headers.get("Content-Encoding")) if raw else None  # fmt: skip
        judge = self.session.judge
        assert judge is not None
        verdict = self.verdict = judge.judge(KubeRequest(method, info, body, target_error))
        self.detail = "summary" if verdict.effect.discovery else "full"
        text = self._record_request(info, body, raw, verdict)
        warning = None
        if verdict.action is not Action.ALLOW:
            self._record_block(verdict, text)
        if verdict.blocks:
            if verdict.action is Action.DENY:
                return self._refuse(verdict.message(), verdict)
            outcome = await hold(self.session, self.number, verdict, text)
            if not outcome.approved:
                return self._refuse(outcome.message, verdict)
            warning = f'299 - "Airlock: {outcome.message}"'
        if not self.session.usable():  # ended while the request waited (revoked, expired): it never runs
            raise GatewayRefusal(401, f"Airlock ended this session ({self.session.end_reason or 'expired'})")
        await self._durable()
        if upgrade is not None:
            return await self._relay(info, upgrade)
        return await self._forward(info, verdict, raw, warning)

    async def _read_body(self) -> bytes:
        try:
            return await self.request.read()
        except web.HTTPRequestEntityTooLarge as e:
            limit = self.session.settings.k8s_max_request_body
            raise GatewayRefusal(413, f"Airlock reads request bodies of at most {limit} bytes") from e

    async def _durable(self) -> None:
        recording = self.session.recording
        if recording is None:
            return
        try:
            await recording.before_forward()
        except RecordingUnavailable as e:
            raise GatewayRefusal(503, "Airlock could not record this request durably (strict recording), so it "
                                      "was not forwarded; try again") from e  # fmt: skip

    def _refuse(self, message: str, verdict: Verdict) -> web.Response:
        effect = verdict.effect
        group = effect.group
        status = k8s_status.refused(message, rule=verdict.rule, name=effect.name, group=group, kind=effect.resource)
        return self._answer_status(status)

    def _answer_status(self, status: Obj) -> web.Response:
        response = status_response(status)
        if _upgrade(self.request) is not None:
            response.force_close()  # the agent asked to upgrade: the connection is no HTTP connection any more
        self.status = response.status
        self.record_response_head(response.status, response.reason, response.headers.items())
        assert isinstance(response.body, bytes)
        self.record_body(Direction.PROXY_TO_AGENT, response.body)
        self.bytes_out += len(response.body)
        return response

    # ------------------------------------------------------------------ recording

    def _record_request(self, info: RequestInfo, body: DecodedBody | None, raw: bytes, verdict: Verdict) -> str:
        """Record the request; returns its text for an approval (request line and masked body)."""
        request = self.request
        head = recorded.request_head(request.method, self.shown_target, request.headers.items())
        self.session.record(Direction.AGENT_TO_PROXY, EventKind.HTTP_HEAD, recorded.head_payload(self.number, head))
        text = f"{request.method} {self.shown_target}"
        body_note: Obj | None = None
        if body is not None and body.error is None:
            stored = self.masker.redact_for_recording(body.value, hint_kind(info.group, info.resource))
            data = dumps(stored)
            self.record_body(Direction.AGENT_TO_PROXY, data)
            text += "\n" + data.decode("utf-8", "replace")[:MAX_APPROVAL_BODY]
            if body.protobuf:
                body_note = {"protobuf": True, "bytes": len(raw)}
        elif raw:
            body_note = {"unread": body.error if body else "", "bytes": len(raw),
                         "sha256": hashlib.sha256(raw).hexdigest()}  # fmt: skip
        effect = verdict.effect
        decision: Obj = {
            "exchange": self.number, "method": request.method, "target": self.shown_target, "verb": info.verb,
            "group": info.group, "version": info.version, "resource": info.resource, "subresource": info.subresource,
            "namespace": info.namespace, "name": effect.name or info.name, "resource_request": info.is_resource,
            "action": verdict.action.value, "rule": verdict.rule, "enforced": verdict.enforced, "detail": self.detail,
            "features": [e.feature.value for e in verdict.effects if e.feature is not None],
        }  # fmt: skip
        if effect.verb != info.verb:
            decision["judged_as"] = effect.verb  # exec, attach, port-forward: create, whatever the method
        command = request.headers.get("Kubectl-Command")
        if command:
            decision["kubectl_command"] = command
        if body_note is not None:
            decision["body"] = body_note
        self.session.decision(EventKind.REQUEST, decision)
        return text

    def _record_block(self, verdict: Verdict, text: str) -> None:
        kind = EventKind.HOLD if verdict.action is Action.HOLD else EventKind.BLOCK
        self.session.decision(kind, {
            "exchange": self.number, "statement": text.split("\n", 1)[0], "statement_kind": verdict.effect.verb,
            "rule": verdict.rule, "reason": verdict.reason, "enforced": verdict.enforced,
            "dry_run": not verdict.enforced, "protocol": "kubernetes", "sqlstate": "403" if verdict.blocks else None,
            "message": verdict.message()})  # fmt: skip

    def record_response_head(self, status: int, reason: str, headers: Any) -> None:
        head = recorded.response_head(status, reason, headers)
        self.session.record(Direction.PROXY_TO_AGENT, EventKind.HTTP_HEAD, recorded.head_payload(self.number, head))

    def record_body(self, direction: Direction, data: bytes) -> None:
        if data and self.detail == "full":
            self.session.record(direction, EventKind.HTTP_BODY, recorded.body_payload(self.number, data))

    def record_streams(self, pieces: list[Recorded]) -> None:
        """Pieces of an upgraded stream (exec, attach, port-forward), as the relays produce them."""
        for piece in pieces:
            if piece.data:
                direction = Direction.AGENT_TO_PROXY if piece.from_agent else Direction.PROXY_TO_AGENT
                payload = recorded.stream_payload(self.number, piece.channel, piece.data)
                self.session.record(direction, EventKind.STREAM, payload)

    def _finish(self) -> None:
        verdict = self.verdict
        duration = time.monotonic() - self.started
        counts = self.masker.take_counts()
        if counts:
            self.session.decision(EventKind.MASK_COUNTS, {"exchange": self.number, "counts": counts})
        end: Obj = {"exchange": self.number, "status": self.status, "bytes": self.bytes_out,
                    "duration_ms": round(duration * 1000, 1)}  # fmt: skip
        if self.items is not None:
            end["items"] = self.items
        if self.end_reason:
            end["reason"] = self.end_reason
        self.session.decision(EventKind.EXCHANGE_END, end)
        recording = self.session.recording
        if recording is not None:
            effect = verdict.effect if verdict is not None else None
            kind = (f"{effect.verb} {effect.resource_path}" if effect.resource_request else effect.verb) \
                if effect is not None else None  # fmt: skip
            decision = verdict.action.value if verdict is not None else "deny"
            recording.statement(f"{self.request.method} {self.shown_target}", kind, decision, self.items,
                                int(duration * 1e9), str(self.status) if self.status >= 400 else None)  # fmt: skip

    def _watching(self) -> bool:
        return self.verdict is not None and self.verdict.effect.verb == "watch"

    # ------------------------------------------------------------------ live streams

    def abort(self, status: Obj) -> None:
        """The session is over: end this exchange's stream with ``status`` (see ``sessions.LiveStream``)."""
        if self.ending is None:
            self.ending = status
            self.end_reason = str(status.get("message", "ended by Airlock"))
        if self._upstream is not None:
            self._upstream.close()
        for close in self._closers:
            close()

    def on_abort(self, close: Any) -> None:
        """Also call ``close()`` when the session ends this exchange (a relay's sockets)."""
        self._closers.append(close)

    # ------------------------------------------------------------------ forwarding

    async def _relay(self, info: RequestInfo, upgrade: str) -> web.StreamResponse:
        if not (info.is_resource and info.resource == "pods" and info.subresource in CONNECT_UPGRADES):
            raise GatewayRefusal(400, "Airlock relays upgraded connections only for pods/exec, pods/attach and "
                                      "pods/portforward")  # fmt: skip
        from .relay_spdy import relay_spdy
        from .relay_ws import relay_websocket

        self.session.live.add(self)
        if upgrade == "websocket":
            return await relay_websocket(self, info)
        if upgrade == "spdy":
            return await relay_spdy(self, info)
        raise GatewayRefusal(400, f"Airlock does not relay {upgrade!r} upgrades")

    async def prepare_upstream(self, *, accept: str | None, extra: tuple[tuple[str, str], ...] = ()
                               ) -> tuple[aiohttp.ClientSession, Any, CIMultiDict[str]]:  # fmt: skip
        """(client, URL, headers) to send this request on to the cluster with (GatewayRefusal when the
        gateway's credential for it is unusable)."""
        session = self.session
        upstreams = session.ctx.upstreams
        backend = session.backend
        assert session.grant is not None
        try:
            token = await upstreams.token(backend)
        except UpstreamError as e:
            raise GatewayRefusal(503, f"Airlock cannot use its credential for this cluster: {e}") from e
        headers = upstream_headers(self.request.headers, token, session.grant, accept=accept, extra=extra)
        return upstreams.client(backend), Upstreams.url(backend, self.target), headers

    async def upstream_request(self, method: str, *, accept: str | None, data: bytes | None = None,
                               extra: tuple[tuple[str, str], ...] = ()) -> aiohttp.ClientResponse:  # fmt: skip
        """Send the request on to the cluster (GatewayRefusal when it cannot be reached)."""
        client, url, headers = await self.prepare_upstream(accept=accept, extra=extra)
        # A pooled connection the cluster closed as it was reused: a read may be sent again (as Go's client
        # does); a write may have reached the cluster, so its failure is the agent's to see.
        attempts = 2 if method in ("GET", "HEAD", "OPTIONS") and not extra else 1
        for attempt in range(attempts):
            try:
                response = await client.request(method, url, headers=headers, data=data, allow_redirects=False)
                break
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as e:
                if attempt + 1 < attempts:
                    continue
                raise GatewayRefusal(503, f"Airlock could not reach the cluster ({type(e).__name__}: {e})") from e
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                raise GatewayRefusal(503, f"Airlock could not reach the cluster ({type(e).__name__}: {e})") from e
        if response.status == 401:
            self.session.ctx.upstreams.rejected(self.session.backend)
            response.release()
            raise GatewayRefusal(502, "the cluster refused Airlock's own credential for it; an operator must "
                                      "fix the target's credential_secret", reason="InternalError")  # fmt: skip
        return response

    async def _forward(self, info: RequestInfo, verdict: Verdict, raw: bytes,
                       warning: str | None) -> web.StreamResponse:  # fmt: skip
        plan = _plan(info, verdict, self.session.access.secrets, self.session.text_masker is not None)
        keep_accept = plan in ("discovery", "log") or not info.is_resource
        accept = None if keep_accept else maskable_accept(self.request.headers.get("Accept"))
        upstream = self._upstream = await self.upstream_request(self.request.method, accept=accept, data=raw or None)
        try:
            headers = response_headers(upstream.headers)
            if warning is not None:
                headers.add("Warning", warning)
            if plan == "objects" or plan == "token":
                return await self._objects(upstream, headers, info, agent_masked=plan == "objects")
            if plan == "log":
                return await self._stream(upstream, headers, mask_agent=True)
            return await self._stream(upstream, headers, mask_agent=False)
        finally:
            self._upstream = None
            upstream.release()

    async def _stream(self, upstream: aiohttp.ClientResponse, headers: CIMultiDict[str], *,
                      mask_agent: bool) -> web.StreamResponse:  # fmt: skip
        """Pass the answer on as it comes (recorded as sent); ``mask_agent``: through the stream masker
        (pod logs)."""
        self.status = upstream.status
        self.record_response_head(upstream.status, upstream.reason or "", headers.items())
        text = self.session.text_masker
        masker = StreamMasker(text) if mask_agent and text is not None else None
        length = upstream.content_length
        if length is not None and length <= SMALL_RESPONSE and masker is None:
            data = await upstream.read()
            self.record_body(Direction.PROXY_TO_AGENT, data)
            self.bytes_out += len(data)
            return web.Response(status=upstream.status, headers=headers, body=data)
        response = web.StreamResponse(status=upstream.status, headers=headers)
        await response.prepare(self.request)
        self.session.live.add(self)
        watch = is_watch(upstream.headers.get("Content-Type")) or self._watching()
        try:
            async for chunk in _chunks(upstream, flush=masker is not None):
                if masker is None:
                    out = chunk or b""
                elif chunk is None:  # quiet for a moment: release what the masker holds back
                    out = masker.flush()
                else:
                    out = masker.feed(chunk)
                if out:
                    await response.write(out)
                    self.bytes_out += len(out)
                    self.record_body(Direction.PROXY_TO_AGENT, out)
                    await self.session.caught_up()
        except (aiohttp.ClientError, ConnectionError) as e:
            if self.ending is None:
                self.end_reason = f"stream broken: {type(e).__name__}"
        tail = masker.flush() if masker is not None else b""
        if self.ending is not None and watch:
            tail += dumps(k8s_status.watch_error(self.ending))
        await self._end_stream(response, tail)
        return response

    async def _end_stream(self, response: web.StreamResponse, tail: bytes) -> None:
        """Send (and record) the last of a streamed answer, then its end."""
        if tail:
            with contextlib.suppress(ConnectionError):
                await response.write(tail)
            self.bytes_out += len(tail)
            self.record_body(Direction.PROXY_TO_AGENT, tail)
        with contextlib.suppress(ConnectionError):
            await response.write_eof()

    async def _objects(self, upstream: aiohttp.ClientResponse, headers: CIMultiDict[str], info: RequestInfo, *,
                       agent_masked: bool) -> web.StreamResponse:  # fmt: skip
        """Answers that may hold Secret or ConfigMap values (or a token): read as JSON and masked."""
        content_type = upstream.headers.get("Content-Type")
        hint = hint_kind(info.group, info.resource)
        if not is_json(content_type):
            if hint not in MASKED_KINDS or upstream.status in (204, 304) or upstream.content_length == 0:
                return await self._stream(upstream, headers, mask_agent=False)
            raise GatewayRefusal(502, f"the cluster answered {content_type or 'without a Content-Type'}, which "
                                      "Airlock cannot mask, so the answer is withheld")  # fmt: skip
        if is_watch(content_type) or self._watching():
            return await self._watch(upstream, headers, hint, agent_masked=agent_masked)
        limit = self.session.settings.k8s_max_masked_response
        data = await upstream.content.read(limit + 1)
        if len(data) > limit:
            raise GatewayRefusal(502, f"the answer is larger than the {limit} bytes Airlock masks; ask for fewer "
                                      "objects (--chunk-size, a label selector)")  # fmt: skip
        if not data.strip():  # no body (a HEAD, an empty answer): nothing to mask
            self.status = upstream.status
            self.record_response_head(upstream.status, upstream.reason or "", headers.items())
            return web.Response(status=upstream.status, headers=headers, body=data)
        try:
            # The cluster's JSON (repeated keys are not refused here as in request bodies: what the agent
            # gets is re-written from what was masked, so it holds each key once).
            value = json.loads(data)
        except ValueError as e:
            raise GatewayRefusal(502, "the cluster's answer is not JSON Airlock can mask, so it is withheld") from e
        if isinstance(value, dict) and isinstance(value.get("items"), list):
            self.items = len(value["items"])
        if agent_masked:
            self.masker.mask(value, hint)
            data = dumps(value)
        self.status = upstream.status
        self.record_response_head(upstream.status, upstream.reason or "", headers.items())
        self.record_body(Direction.PROXY_TO_AGENT, self._stored(value, data, hint, agent_masked))
        self.bytes_out += len(data)
        return web.Response(status=upstream.status, headers=headers, body=data)

    async def _watch(self, upstream: aiohttp.ClientResponse, headers: CIMultiDict[str], hint: str, *,
                     agent_masked: bool) -> web.StreamResponse:  # fmt: skip
        """A watch of Secrets or ConfigMaps: every event masked before it is sent."""
        self.status = upstream.status
        self.record_response_head(upstream.status, upstream.reason or "", headers.items())
        response = web.StreamResponse(status=upstream.status, headers=headers)
        await response.prepare(self.request)
        self.session.live.add(self)
        framer = WatchFramer()
        self.items = 0
        try:
            try:
                async for chunk in _chunks(upstream, flush=False):
                    assert chunk is not None
                    for event in framer.feed(chunk):
                        await self._send_event(response, event, hint, agent_masked)
                for event in framer.finish():
                    await self._send_event(response, event, hint, agent_masked)
            except (aiohttp.ClientError, ConnectionError) as e:
                if self.ending is None:
                    self.end_reason = f"stream broken: {type(e).__name__}"
        except WatchStreamError as e:
            log.error("watch stream of exchange %d unreadable: %s", self.number, e)
            self.ending = self.ending or k8s_status.failure(502, f"Airlock ended the watch: {e}")
            self.end_reason = str(e)
        await self._end_stream(response, dumps(k8s_status.watch_error(self.ending)) if self.ending else b"")
        return response

    async def _send_event(self, response: web.StreamResponse, event: Any, hint: str, agent_masked: bool) -> None:
        if agent_masked:
            self.masker.mask(event, hint)
        raw = dumps(event)
        await response.write(raw)
        self.bytes_out += len(raw)
        assert self.items is not None
        self.items += 1
        self.record_body(Direction.PROXY_TO_AGENT, self._stored(event, raw, hint, agent_masked))
        await self.session.caught_up()

    def _stored(self, value: Any, sent: bytes, hint: str, agent_masked: bool) -> bytes:
        """What is recorded of an answer: what was sent, when the agent got it masked as storage needs;
        else (a revealed Secret, a TokenRequest) a redacted copy."""
        if agent_masked and self.masker.secrets:
            return sent
        return dumps(self.masker.redact_for_recording(value, hint))


async def _chunks(upstream: aiohttp.ClientResponse, *, flush: bool, quiet: float = 0.05) -> Any:
    """The answer's chunks as they arrive; with ``flush``, None after each ``quiet`` pause (so a masker can
    release what it holds back)."""
    content = upstream.content
    if not flush:
        async for chunk in content.iter_any():
            yield chunk
        return
    pending: asyncio.Task[bytes] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(content.readany())
            done, _ = await asyncio.wait({pending}, timeout=quiet)
            if not done:
                yield None
                done, _ = await asyncio.wait({pending})
            chunk = pending.result()
            pending = None
            if not chunk:
                return
            yield chunk
    finally:
        if pending is not None and not pending.done():
            pending.cancel()


def _plan(info: RequestInfo, verdict: Verdict, secrets: str, masking: bool) -> str:
    """How the answer is handled: discovery, objects (masked JSON), token (the agent gets it as it is,
    the recording redacted), log (stream-masked), or plain (passed through)."""
    if verdict.effect.discovery:
        return "discovery"
    if not info.is_resource:
        return "plain"
    if info.resource == "pods" and info.subresource == "log" and not info.group:
        return "log"
    if info.resource == "serviceaccounts" and info.subresource == "token" and not info.group:
        return "token"
    if info.subresource not in OBJECT_SUBRESOURCES:
        return "plain"  # proxy and other connect-style subresources answer what the pod or node does
    kind = hint_kind(info.group, info.resource)
    if kind == "Secret":
        return "token" if secrets == "reveal" else "objects"
    return "objects" if kind or masking else "plain"


def _segment_error(path: str) -> str | None:
    trimmed = path.strip("/")
    if trimmed and any(part in ("", ".", "..") for part in trimmed.split("/")):
        return "Airlock refuses paths with empty, '.' or '..' segments"
    return None


def _upgrade(request: web.Request) -> str | None:
    connection = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
    if "upgrade" not in connection:
        return None
    upgrade = request.headers.get("Upgrade", "").strip().lower()
    if upgrade == "websocket":
        return "websocket"
    if upgrade.startswith("spdy/"):
        return "spdy"
    return upgrade or "unnamed"

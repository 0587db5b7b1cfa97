"""exec, attach and port-forward over SPDY/3.1 (kubectl 1.20, and kubectl 1.36's fallback): relayed and
recorded, stdout and stderr masked (``shared.k8s.streams.SpdyChannels``).

Theory of operation. The agent's upgrade request goes on to the cluster (aiohttp's client, the agent's
``Upgrade`` and ``X-Stream-Protocol-Version`` headers); an answer other than 101 is passed back as it is
(kubectl prints the cluster's Status). On 101 the agent is answered 101 with the cluster's chosen
protocol version, and both connections are taken over from aiohttp as its own WebSocket support takes
them over (``set_parser``): from then on every byte read on either side is queued for one pump per
direction, which parses frames, passes them on (the cluster's stdout and stderr DATA re-framed after
masking) and records them. Backpressure: a side whose queued bytes pass ``HIGH_WATER`` stops being read
until its pump has caught up, and a pump waits while its destination's write buffer is full, so a slow
peer slows the stream instead of growing the proxy's memory. The cluster's pump releases held-back output
after ``QUIET`` seconds of silence, and it is the only writer to the agent after the 101. When either
side closes, both are closed; when the session ends the stream, both are closed (SPDY has no place for a
reason the agent would print; the recording says why).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from aiohttp import web

from shared.k8s.requestinfo import RequestInfo
from shared.k8s.spdy import SpdyProtocolError
from shared.k8s.streams import ChannelMaskers, Recorded, SpdyChannels
from shared.masking.stream import StreamMasker
from shared.recording.format import Direction

from .exchange import Exchange
from .sessions import GatewayRefusal
from .upstream import response_headers

HIGH_WATER = 1 << 20
QUIET = 0.05
_EOF = b""


class _Feed:
    """What aiohttp's protocol feeds after the upgrade: bytes into a queue; reading pauses above the mark."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport = transport
        self.queued = 0
        self.eof = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self.queue.put_nowait(bytes(data))
            self.queued += len(data)
            if self.queued > HIGH_WATER and self.transport.is_reading():
                self.transport.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        self.eof = True
        self.queue.put_nowait(_EOF)

    def is_eof(self) -> bool:  # what aiohttp's client protocol asks of a payload
        return self.eof

    async def get(self) -> bytes:
        data = await self.queue.get()
        self.queued -= len(data)
        if self.queued <= HIGH_WATER // 2 and not self.transport.is_closing() and not self.transport.is_reading():
            self.transport.resume_reading()
        return data


async def relay_spdy(exchange: Exchange, info: RequestInfo) -> web.StreamResponse:
    request = exchange.request
    extra = (("Connection", "Upgrade"), ("Upgrade", request.headers.get("Upgrade", "SPDY/3.1")))
    cluster = await exchange.upstream_request(request.method, accept=None, extra=extra)
    if cluster.status != 101:
        try:
            body = await cluster.content.read(1 << 20)
            headers = response_headers(cluster.headers)
        finally:
            cluster.release()
        exchange.status = cluster.status
        exchange.record_response_head(cluster.status, cluster.reason or "", headers.items())
        exchange.record_body(Direction.PROXY_TO_AGENT, body)
        refused = web.Response(status=cluster.status, headers=headers, body=body)
        refused.force_close()
        return refused
    connection = cluster.connection
    if connection is None or connection.transport is None or request.transport is None:
        cluster.close()
        raise GatewayRefusal(502, "the cluster closed the stream as it opened")
    upgraded = {"Connection": "Upgrade", "Upgrade": cluster.headers.get("Upgrade", "SPDY/3.1")}
    version = cluster.headers.get("X-Stream-Protocol-Version")
    if version:
        upgraded["X-Stream-Protocol-Version"] = version
    answer = web.StreamResponse(status=101, headers=upgraded)
    answer.force_close()
    await answer.prepare(request)
    exchange.status = 101
    exchange.record_response_head(101, "Switching Protocols", list(upgraded.items()))
    agent_transport: asyncio.Transport = request.transport
    cluster_transport: asyncio.Transport = connection.transport
    from_agent, from_cluster = _Feed(agent_transport), _Feed(cluster_transport)
    cast(Any, request.protocol).set_parser(from_agent)
    cast(Any, connection.protocol).set_parser(from_cluster, from_cluster)
    text = exchange.session.text_masker
    port_forward = info.subresource == "portforward"
    maskers = ChannelMaskers(lambda: StreamMasker(text) if text is not None and not port_forward else None)
    relay = _Relay(exchange, SpdyChannels(maskers, port_forward=port_forward), agent_transport, cluster_transport)
    exchange.on_abort(relay.close)
    try:
        await relay.run(from_agent, from_cluster)
    finally:
        relay.close()
        cluster.close()
    return answer


class _Relay:
    def __init__(self, exchange: Exchange, channels: SpdyChannels, agent: asyncio.Transport,
                 cluster: asyncio.Transport) -> None:  # fmt: skip
        self.exchange = exchange
        self.channels = channels
        self.agent = agent
        self.cluster = cluster

    def close(self) -> None:
        for transport in (self.agent, self.cluster):
            if not transport.is_closing():
                transport.close()

    async def run(self, from_agent: _Feed, from_cluster: _Feed) -> None:
        upward = asyncio.ensure_future(self._agent_to_cluster(from_agent))
        downward = asyncio.ensure_future(self._cluster_to_agent(from_cluster))
        try:
            done, _ = await asyncio.wait({upward, downward}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = task.exception()
                if isinstance(error, SpdyProtocolError):
                    self.exchange.end_reason = f"SPDY framing broken: {error}"
        finally:
            self.close()
            for task in (upward, downward):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._record(self.channels.finish())

    async def _agent_to_cluster(self, feed: _Feed) -> None:
        while (data := await feed.get()) != _EOF:
            forward, records = self.channels.from_agent(data)
            self._record(records)
            await self._write(self.cluster, forward)
        self.exchange.end_reason = self.exchange.end_reason or "the agent closed the stream"

    async def _cluster_to_agent(self, feed: _Feed) -> None:
        pending: asyncio.Task[bytes] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(feed.get())
                if self.channels.maskers.holding:
                    done, _ = await asyncio.wait({pending}, timeout=QUIET)
                    if not done:
                        await self._deliver(*self.channels.flush())
                        continue
                data = await pending
                pending = None
                if data == _EOF:
                    break
                await self._deliver(*self.channels.from_cluster(data))
            await self._deliver(*self.channels.flush())
        finally:
            if pending is not None and not pending.done():
                pending.cancel()

    async def _deliver(self, data: bytes, records: list[Recorded]) -> None:
        self._record(records)
        await self._write(self.agent, data)
        self.exchange.bytes_out += len(data)

    async def _write(self, transport: asyncio.Transport, data: bytes) -> None:
        if not data or transport.is_closing():
            return
        transport.write(data)
        # aiohttp owns the protocols of both connections, so their drain is not ours to wait on: poll.
        while transport.get_write_buffer_size() > HIGH_WATER and not transport.is_closing():  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        await self.exchange.session.caught_up()

    def _record(self, records: list[Recorded]) -> None:
        self.exchange.record_streams(records)

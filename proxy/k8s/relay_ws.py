"""exec, attach and port-forward over WebSocket (what kubectl 1.30+ speaks): two WebSockets, one relay.

Theory of operation. The cluster side is opened first (aiohttp's client, the binary channel protocols the
agent offered, in its order), so the agent's WebSocket is accepted with exactly the protocol the cluster
chose; a cluster that refuses the upgrade gets its refusal passed on as a Status (kubectl then falls back
to SPDY, as it would against the cluster). Then two pumps run: agent -> cluster passes every message on
unchanged and records it (stdin masked for the recording); cluster -> agent goes through
``WebSocketChannels`` (stdout and stderr masked). That pump is the only writer to the agent, so output
released at a pause (the stream masker holds back a possible value's beginning) can never overtake later
output. When either side closes, the other is closed; when the session ends the stream (revocation,
shutdown), the agent gets the reason as a Status on the error channel first, as the kubelet reports a
failed command, then the close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from shared.k8s.recorded import ERROR
from shared.k8s.requestinfo import RequestInfo
from shared.k8s.streams import PORT_FORWARD, ChannelMaskers, Recorded, WebSocketChannels
from shared.masking.stream import StreamMasker

from .exchange import Exchange
from .sessions import GatewayRefusal

CHANNEL_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                     "channel.k8s.io")  # fmt: skip
MAX_MESSAGE = 16 << 20
QUIET = 0.05  # seconds of silence after which held-back output is released


async def relay_websocket(exchange: Exchange, info: RequestInfo) -> web.StreamResponse:
    request = exchange.request
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    framed = info.subresource in ("exec", "attach")
    protocols = [p for p in offered if p in CHANNEL_PROTOCOLS] if framed else offered
    if framed and not protocols:
        raise GatewayRefusal(400, "Airlock relays exec and attach over the binary channel protocols "
                                  f"({', '.join(CHANNEL_PROTOCOLS[:2])}); the client offered none")  # fmt: skip
    client, url, headers = await exchange.prepare_upstream(accept=None)
    try:
        cluster = await client.ws_connect(url, protocols=protocols, headers=headers, autoping=True,
                                          max_msg_size=MAX_MESSAGE, compress=0)  # fmt: skip
    except aiohttp.WSServerHandshakeError as e:
        code = e.status if e.status >= 400 else 502
        raise GatewayRefusal(code, f"the cluster refused the stream: {e.message}") from e
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        raise GatewayRefusal(503, f"Airlock could not reach the cluster ({type(e).__name__}: {e})") from e
    agent = web.WebSocketResponse(protocols=(cluster.protocol,) if cluster.protocol else (), autoping=True,
                                  max_msg_size=MAX_MESSAGE, compress=False)  # fmt: skip
    try:
        await agent.prepare(request)
    except Exception:
        await cluster.close()
        raise
    exchange.status = 101
    exchange.record_response_head(101, "Switching Protocols", [("Upgrade", "websocket"),
                                                               ("Sec-WebSocket-Protocol", cluster.protocol or "")])
    text = exchange.session.text_masker
    maskers = ChannelMaskers(lambda: StreamMasker(text) if text is not None and framed else None)
    relay = _Relay(exchange, agent, cluster, WebSocketChannels(maskers), framed)
    exchange.on_abort(relay.abort)
    await relay.run()
    return agent


class _Relay:
    def __init__(self, exchange: Exchange, agent: web.WebSocketResponse, cluster: aiohttp.ClientWebSocketResponse,
                 channels: WebSocketChannels, framed: bool) -> None:  # fmt: skip
        self.exchange = exchange
        self.agent = agent
        self.cluster = cluster
        self.channels = channels
        self.framed = framed
        self.aborting = False

    def abort(self) -> None:
        """The session ends this stream: stop the cluster side; the pump tells the agent why."""
        self.aborting = True
        self.exchange.session.spawn(self._close_cluster())

    async def _close_cluster(self) -> None:
        await self.cluster.close()

    async def run(self) -> None:
        upward = asyncio.ensure_future(self._agent_to_cluster())
        try:
            await self._cluster_to_agent()
        finally:
            if not upward.done():
                upward.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await upward
            self._record(self.channels.finish())
            await self.cluster.close()

    async def _agent_to_cluster(self) -> None:
        async for message in self.agent:
            if message.type == WSMsgType.BINARY:
                data: bytes = message.data
                if self.framed:
                    self._record(self.channels.from_agent(data))
                else:
                    self._record([Recorded(True, PORT_FORWARD, data)])
                await self.cluster.send_bytes(data)
            elif message.type == WSMsgType.TEXT:
                await self.cluster.send_str(message.data)
        if not self.aborting:
            self.exchange.end_reason = self.exchange.end_reason or "the agent closed the stream"
        await self.cluster.close()

    async def _cluster_to_agent(self) -> None:
        pending: asyncio.Future[Any] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(self.cluster.receive())
                if self.framed and self.channels.maskers.holding:
                    done, _ = await asyncio.wait({pending}, timeout=QUIET)
                    if not done:
                        await self._send(*self.channels.flush())
                        continue
                message = await pending
                pending = None
                if message.type == WSMsgType.BINARY:
                    if self.framed:
                        await self._send(*self.channels.from_cluster(message.data))
                    else:
                        await self._send([message.data], [Recorded(False, PORT_FORWARD, message.data)])
                elif message.type == WSMsgType.TEXT:
                    await self.agent.send_str(message.data)
                else:  # CLOSE, CLOSING, CLOSED, ERROR
                    break
            await self._send(*self.channels.flush())
            if self.aborting and self.exchange.ending is not None and self.framed:
                status = json.dumps(self.exchange.ending).encode()
                await self._send([bytes([ERROR]) + status], [Recorded(False, ERROR, status)])
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
            with contextlib.suppress(Exception):
                await self.agent.close()

    async def _send(self, messages: list[bytes], records: list[Recorded]) -> None:
        self._record(records)
        for message in messages:
            if self.agent.closed:
                return
            with contextlib.suppress(ConnectionError):
                await self.agent.send_bytes(message)
            self.exchange.bytes_out += len(message)
        await self.exchange.session.caught_up()

    def _record(self, records: list[Recorded]) -> None:
        self.exchange.record_streams(records)

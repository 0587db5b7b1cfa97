"""Exec, attach and port-forward streams through the gateway, sans-I/O: what is passed on, masked, recorded.

Kubernetes' remote-command protocols number a stream's channels 0 stdin, 1 stdout, 2 stderr, 3 error
(the final Status), 4 resize. Over WebSocket (``v5.channel.k8s.io``, ``v4``...) each binary message starts
with its channel byte; over SPDY/3.1 each channel is a SPDY stream whose SYN_STREAM names it in the
``streamtype`` header. Either way the relay:
- passes the agent's frames on unchanged, and records stdin through a stream masker (the recording never
  holds a password typed at a prompt that a detector recognises);
- passes the cluster's stdout and stderr through a stream masker per channel (``shared.masking.stream``),
  so a value split across frames is still found; what the masker holds back goes out at a pause
  (``flush``) and before anything on the error channel or the end of a stream;
- passes every other frame on unchanged.
For SPDY, control frames (SYN_STREAM, SYN_REPLY, PING, GOAWAY ...) are passed byte for byte: their header
blocks belong to the two peers' compression contexts, which the relay only reads (one ``SpdyConnection``
per direction, so every header block is inflated in order). Only DATA frames on stdout and stderr are
rewritten, with the masked payload; DATA frames carry no compressed state. Port-forward streams carry
arbitrary bytes and are recorded as they are (channel ``PORT_FORWARD``), never masked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shared.k8s.recorded import ERROR, STDERR, STDIN, STDOUT, STREAM_CHANNELS
from shared.k8s.spdy import Data, SpdyConnection, SynStream
from shared.masking.stream import StreamMasker

PORT_FORWARD = 255  # the recording's channel for an unframed stream (port-forward data)
MaskerFactory = Callable[[], StreamMasker | None]


@dataclass(frozen=True, slots=True)
class Recorded:
    """A piece of a stream for the recording: who sent it (``from_agent``), the channel, the bytes."""

    from_agent: bool
    channel: int
    data: bytes


@dataclass
class ChannelMaskers:
    """One stream masker per output channel (stdout, stderr) and one for stdin as it is recorded."""

    factory: MaskerFactory
    output: dict[int, StreamMasker] = field(default_factory=dict)
    stdin: StreamMasker | None = None

    def __post_init__(self) -> None:
        self.stdin = self.factory()

    def for_output(self, channel: int) -> StreamMasker | None:
        masker = self.output.get(channel)
        if masker is None:
            made = self.factory()
            if made is None:
                return None
            masker = self.output[channel] = made
        return masker

    @property
    def holding(self) -> bool:
        return any(m.pending for m in self.output.values())

    def record_stdin(self, data: bytes) -> bytes:
        return self.stdin.feed(data) if self.stdin is not None else data

    def flush_stdin(self) -> bytes:
        return self.stdin.flush() if self.stdin is not None else b""


class WebSocketChannels:
    """The channel-byte framing of ``v5``/``v4.channel.k8s.io``: one binary message per call."""

    def __init__(self, maskers: ChannelMaskers) -> None:
        self.maskers = maskers

    def from_agent(self, message: bytes) -> list[Recorded]:
        """Recorded pieces of an agent message (which is passed on unchanged)."""
        if not message:
            return []
        channel, payload = message[0], message[1:]
        data = self.maskers.record_stdin(payload) if channel == STDIN else payload
        return [Recorded(True, channel, data)] if data else []

    def from_cluster(self, message: bytes) -> tuple[list[bytes], list[Recorded]]:
        """(messages to send the agent, pieces to record) for one cluster message."""
        if not message:
            return [message], []
        channel, payload = message[0], message[1:]
        if channel in (STDOUT, STDERR):
            masker = self.maskers.for_output(channel)
            out = masker.feed(payload) if masker is not None else payload
            if not out:
                return [], []
            return [bytes([channel]) + out], [Recorded(False, channel, out)]
        sent, records = self.flush() if channel == ERROR else ([], [])
        return [*sent, message], [*records, Recorded(False, channel, payload)]

    def flush(self) -> tuple[list[bytes], list[Recorded]]:
        """Release what the output maskers hold (a pause, the error channel, the end)."""
        sent: list[bytes] = []
        records: list[Recorded] = []
        for channel, masker in sorted(self.maskers.output.items()):
            out = masker.flush()
            if out:
                sent.append(bytes([channel]) + out)
                records.append(Recorded(False, channel, out))
        return sent, records

    def finish(self) -> list[Recorded]:
        tail = self.maskers.flush_stdin()
        return [Recorded(True, STDIN, tail)] if tail else []


class SpdyChannels:
    """A SPDY/3.1 remote-command connection, both directions (see the module docstring)."""

    def __init__(self, maskers: ChannelMaskers, *, port_forward: bool = False) -> None:
        self.maskers = maskers
        self.port_forward = port_forward
        self._agent = SpdyConnection()  # reads what the agent sends
        self._cluster = SpdyConnection()  # reads what the cluster sends
        self.channels: dict[int, int] = {}  # SPDY stream id -> channel

    def from_agent(self, data: bytes) -> tuple[bytes, list[Recorded]]:
        """(bytes to send the cluster, unchanged; pieces to record)."""
        records: list[Recorded] = []
        for frame, _ in self._agent.receive_raw(data):
            if isinstance(frame, SynStream):
                kind = (frame.headers.get("streamtype") or [""])[0]
                self.channels[frame.stream_id] = PORT_FORWARD if self.port_forward else STREAM_CHANNELS.get(kind, 254)
            elif isinstance(frame, Data) and frame.payload:
                channel = self.channels.get(frame.stream_id, PORT_FORWARD)
                piece = self.maskers.record_stdin(frame.payload) if channel == STDIN else frame.payload
                if piece:
                    records.append(Recorded(True, channel, piece))
        return data, records

    def from_cluster(self, data: bytes) -> tuple[bytes, list[Recorded]]:
        """(bytes to send the agent, stdout and stderr masked; pieces to record)."""
        out: list[bytes] = []
        records: list[Recorded] = []
        for frame, raw in self._cluster.receive_raw(data):
            if not isinstance(frame, Data):
                out.append(raw)
                continue
            channel = self.channels.get(frame.stream_id, PORT_FORWARD)
            if channel in (STDOUT, STDERR):
                masker = self.maskers.for_output(channel)
                payload = masker.feed(frame.payload) if masker is not None else frame.payload
                if frame.fin and masker is not None:
                    payload += masker.flush()
                if payload or frame.fin:
                    out.append(SpdyConnection.data_frame(frame.stream_id, payload, fin=frame.fin))
                if payload:
                    records.append(Recorded(False, channel, payload))
                continue
            if channel == ERROR:
                flushed, flushed_records = self.flush()
                out.append(flushed)
                records += flushed_records
            out.append(raw)
            if frame.payload:
                records.append(Recorded(False, channel, frame.payload))
        return b"".join(out), records

    def flush(self) -> tuple[bytes, list[Recorded]]:
        """DATA frames with what the output maskers hold (a pause, the error stream, the end)."""
        frames: list[bytes] = []
        records: list[Recorded] = []
        by_channel = {channel: stream for stream, channel in self.channels.items()}
        for channel, masker in sorted(self.maskers.output.items()):
            out = masker.flush()
            stream = by_channel.get(channel)
            if out and stream is not None:
                frames.append(SpdyConnection.data_frame(stream, out))
                records.append(Recorded(False, channel, out))
        return b"".join(frames), records

    def finish(self) -> list[Recorded]:
        tail = self.maskers.flush_stdin()
        return [Recorded(True, STDIN, tail)] if tail else []

"""``airlock sessions list|show``, ``airlock replay`` and ``airlock verify``: reading recorded sessions.

The index (DynamoDB) finds sessions; the recording (S3 chunks + signed manifest) is what replay renders
and verify checks. ``Transcript`` turns recorded events back into something a reviewer can follow: it
re-frames each direction's byte stream with the same codec the proxy uses (``shared.pg.wire``) and prints
statements, result summaries (columns, row count, first rows), notices, errors and decisions with their
time relative to the session start.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.pg.wire import messages as m
from shared.pg.wire.constants import LARGE_MESSAGE_LIMIT
from shared.pg.wire.errors import ProtocolViolation
from shared.pg.wire.framing import Framer
from shared.recording.format import (
    MANIFEST_NAME,
    Direction,
    Event,
    EventKind,
    RecordingFormatError,
    decode_chunk,
    parse_chunk_name,
)

from .kube_transcript import KubeTranscript, is_kubernetes

FIRST_ROWS = 5
_VALUE_WIDTH = 40

# ---------------------------------------------------------------------- wiring


def register(commands: Any) -> None:
    """Add ``sessions``, ``replay`` and ``verify`` to the ``airlock`` command parser."""
    sessions = commands.add_parser("sessions", help="recorded sessions").add_subparsers(
        dest="sessions_command", required=True
    )
    ls = sessions.add_parser("list", help="sessions, newest first")
    ls.add_argument("--identity")
    ls.add_argument("--target")
    ls.add_argument("--since", help="ISO date/time or an age like 30m, 2h, 7d")
    ls.add_argument("--status", choices=["active", "closed", "incomplete", "refused"])
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(func=sessions_list)
    show = sessions.add_parser("show", help="one session's index item")
    show.add_argument("session_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=sessions_show)

    replay_p = commands.add_parser("replay", help="a session as a readable transcript")
    replay_p.add_argument("session_id")
    replay_p.add_argument("--speed", type=float, default=0.0, help="playback speed (1 = real time; 0 = at once)")
    replay_p.add_argument("--follow", action="store_true", help="keep printing a live session until it ends")
    replay_p.add_argument("--raw", type=Path, metavar="DIR", help="export the agent-side byte streams to DIR")
    replay_p.add_argument("--rows", type=int, default=FIRST_ROWS, help="first rows shown per result")
    replay_p.set_defaults(func=replay)

    verify_p = commands.add_parser("verify", help="check a recording: chain, hashes, signature, retention")
    verify_p.add_argument("session_id", nargs="?")
    verify_p.add_argument("--dir", type=Path, help="a downloaded session directory instead of S3")
    verify_p.add_argument("--public-key", type=Path, help="PEM or DER public key (default: KMS GetPublicKey)")
    verify_p.add_argument("--json", action="store_true")
    verify_p.set_defaults(func=verify)


def _aws(args: argparse.Namespace) -> None:
    from .environment import use_local_stack

    use_local_stack(args.state_dir)


def _index() -> Any:
    from shared.config import control_plane_settings
    from shared.store.sessions import DynamoSessionIndex

    return DynamoSessionIndex(control_plane_settings())


def _store() -> Any:
    from shared.config import control_plane_settings
    from shared.recording.store import ChunkStore

    return ChunkStore(control_plane_settings().sessions_bucket)


def _get(session_id: str) -> Any:
    from shared.store.base import NotFound, StoreError

    try:
        return _index().get(session_id)
    except NotFound:
        sys.exit(f"airlock: no session {session_id}")
    except StoreError as e:
        sys.exit(f"airlock: {e}")


# ---------------------------------------------------------------------- sessions list / show


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``30m`` / ``2h`` / ``7d`` ago, or an ISO date/time (UTC unless it says otherwise)."""
    now = now or datetime.now(UTC)
    rel = re.fullmatch(r"(\d+)([smhd])", value.strip())
    if rel:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[rel.group(2)]
        return now - timedelta(**{unit: int(rel.group(1))})
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--since: {value!r} is neither an age (30m, 2h, 7d) nor a date") from e
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def sessions_list(args: argparse.Namespace) -> None:
    from shared.store.base import StoreError
    from shared.store.sessions import SessionState

    _aws(args)
    try:
        since = parse_since(args.since) if args.since else None
    except argparse.ArgumentTypeError as e:
        sys.exit(f"airlock: {e}")
    index = _index()
    status = SessionState(args.status) if args.status else None
    # Filters the index cannot apply are applied here, so fetch more than will be shown.
    fetch = args.limit * 4 if status or (args.identity and args.target) else args.limit
    try:
        if args.identity:
            found = index.query_by_identity(args.identity, since, fetch)
        elif args.target:
            found = index.query_by_target(args.target, since, fetch)
        elif status:
            found = index.query_by_status(status, since, args.limit)
        else:
            found = [r for s in SessionState for r in index.query_by_status(s, since, args.limit)]
    except StoreError as e:
        sys.exit(f"airlock: {e}")
    rows = [r for r in found if (not args.target or r.target == args.target) and (status is None or r.status is status)]
    rows.sort(key=lambda r: r.started_at, reverse=True)
    rows = rows[: args.limit]
    if args.json:
        for r in rows:
            print(json.dumps(record_json(r)))
        return
    print(render_table(rows))


def render_table(rows: list[Any]) -> str:
    header = ("STARTED (UTC)", "SESSION", "IDENTITY", "TARGET/DB", "STATUS", "DURATION", "STMTS", "IN", "OUT")
    table = [header]
    for r in rows:
        c = r.counters
        table.append(
            (
                r.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                r.session_id,
                _cut(r.identity, 32),
                f"{r.target}/{r.database}",
                r.status.value,
                _duration(r.duration_seconds),
                str(c.statements),
                _size(c.bytes_agent_to_proxy),
                _size(c.bytes_proxy_to_agent),
            )
        )
    return align(table) if len(table) > 1 else "no sessions"


def align(table: Sequence[Sequence[str]]) -> str:
    """Rows as columns padded to their widest cell (the first row is the header)."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in table)


def record_json(r: Any) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v.value if hasattr(v, "value") else v

    out: dict[str, Any] = plain(dataclasses.asdict(r))
    out["status"] = r.status.value
    return out


def sessions_show(args: argparse.Namespace) -> None:
    _aws(args)
    r = _get(args.session_id)
    doc = record_json(r)
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    counters = doc.pop("counters")
    for key, value in {**doc, **counters}.items():
        if value not in ("", None):
            print(f"{key:22} {value}")


# ---------------------------------------------------------------------- verify


def verify(args: argparse.Namespace) -> None:
    from shared.recording.signing import KmsSigner, SigningError
    from shared.recording.store import RecordingStoreError
    from shared.recording.verify import DirectorySource, S3Source, SessionSource, verify_session

    if (args.dir is None) == (args.session_id is None):
        sys.exit("airlock: verify needs a session id or --dir PATH (not both)")
    _aws(args)
    source: SessionSource
    if args.dir is not None:
        if not args.dir.is_dir():
            sys.exit(f"airlock: {args.dir} is not a directory")
        source = DirectorySource(args.dir)
    else:
        source = S3Source(_store(), _prefix(args.session_id))
    try:
        if args.public_key is not None:
            key = args.public_key.read_bytes()
        else:
            from shared.config import control_plane_settings

            key = KmsSigner(control_plane_settings().signing_key_id).public_key_der()
        report = verify_session(source, key)
    except (OSError, SigningError, RecordingStoreError, ValueError) as e:
        sys.exit(f"airlock: cannot verify: {e}")
    mf = report.manifest
    if args.json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "defect": report.defect,
                    "source": report.source,
                    "status": mf.status.value if mf else None,
                    "chunks_checked": report.chunks_checked,
                    "events_checked": report.events_checked,
                    "retention_checked": report.retention_checked,
                }
            )
        )
    elif report.ok and mf is not None:
        retention = "Object Lock retention checked" if report.retention_checked else "retention not checked (local)"
        print(
            f"OK {report.source}: session {mf.session.session_id} ({mf.status.value}), "
            f"{report.chunks_checked} chunks, {report.events_checked} events, chain and signature valid "
            f"(key {mf.signature.key_id if mf.signature else '?'}), {retention}"
        )
    else:
        print(f"DEFECT {report.source}: {report.defect}")
    if not report.ok:
        sys.exit(1)


def _prefix(session_id: str) -> str:
    from shared.store.base import NotFound, StoreError

    try:
        prefix: str = _index().get(session_id).prefix
        if prefix:
            return prefix
    except NotFound:
        pass
    except StoreError as e:
        print(f"airlock: sessions index unavailable ({e}); searching the bucket", file=sys.stderr)
    found: str | None = _store().find_session_prefix(session_id)
    if not found:
        sys.exit(f"airlock: no recording for session {session_id}")
    return found


# ---------------------------------------------------------------------- replay


def replay(args: argparse.Namespace) -> None:
    from shared.recording.store import RecordingStoreError

    _aws(args)
    store = _store()
    prefix = _prefix(args.session_id)
    transcript: Transcript | KubeTranscript | None = None  # chosen by the recording's first event
    raw: list[list[bytes]] = [[], []]
    last_ts: int | None = None
    try:
        for event in recorded_events(store, prefix, follow=args.follow):
            if transcript is None:
                transcript = KubeTranscript(args.rows) if is_kubernetes(event) else Transcript(first_rows=args.rows)
            if args.speed > 0 and last_ts is not None:
                time.sleep(max(0.0, (event.ts_ns - last_ts) / 1e9 / args.speed))
            last_ts = event.ts_ns
            if event.direction != Direction.DECISION:
                raw[event.direction].append(event.payload)
            for line in transcript.feed(event):
                print(line, flush=True)
    except RecordingStoreError as e:
        sys.exit(f"airlock: {e}")
    except KeyboardInterrupt:
        pass
    for line in transcript.finish() if transcript is not None else []:
        print(line)
    if args.raw is not None:
        args.raw.mkdir(parents=True, exist_ok=True)
        (args.raw / "agent_to_proxy.bin").write_bytes(b"".join(raw[Direction.AGENT_TO_PROXY]))
        (args.raw / "proxy_to_agent.bin").write_bytes(b"".join(raw[Direction.PROXY_TO_AGENT]))
        print(f"raw streams written to {args.raw}/agent_to_proxy.bin and proxy_to_agent.bin", file=sys.stderr)


def recorded_events(store: Any, prefix: str, *, follow: bool = False, poll: float = 1.0) -> Iterator[Event]:
    """Every event of the recording in order; with ``follow``, wait for new chunks until it is sealed."""
    next_index = 0
    while True:
        names = {k[len(prefix) :] for k in store.list_keys(prefix)}
        sealed = MANIFEST_NAME in names
        while f"{next_index:08d}.chunk" in names:
            name = f"{next_index:08d}.chunk"
            try:
                chunk = decode_chunk(store.get(prefix + name))
            except RecordingFormatError as e:
                raise SystemExit(f"airlock: {name} is corrupt ({e}); run `airlock verify`") from e
            yield from chunk.events
            next_index += 1
        if not follow or sealed:
            extra = sorted(n for n in names if (i := parse_chunk_name(n)) is not None and i > next_index)
            if extra:
                print(f"airlock: chunk {next_index} is missing; later chunks not shown", file=sys.stderr)
            return
        time.sleep(poll)


class _Stream:
    """One direction's byte stream, re-framed into messages (startup packets first on the agent side)."""

    def __init__(self, peer: str, startup: bool) -> None:
        self.framer = Framer(limit=LARGE_MESSAGE_LIMIT, peer=peer)
        self.startup = startup
        self.pending = b""
        self.broken = False

    def messages(self, data: bytes, expected_answers: int = 0) -> Iterator[tuple[str, Any]]:
        """(kind, value): ("startup", packet), ("answer", b"S"), ("msg", (type, body))."""
        if self.broken:
            return
        self.pending += data
        while expected_answers and self.pending and self.pending[:1] in (b"S", b"N"):
            yield "answer", self.pending[:1]
            self.pending = self.pending[1:]
            expected_answers -= 1
        while self.startup and len(self.pending) >= 8 and self.pending[0] == 0:
            length = int.from_bytes(self.pending[:4], "big")
            if len(self.pending) < length:
                return
            body, self.pending = self.pending[4:length], self.pending[length:]
            packet = m.parse_startup_packet(body)
            if isinstance(packet, m.StartupMessage):
                self.startup = False
            yield "startup", packet
        if self.startup and self.pending and self.pending[0] != 0:
            self.startup = False  # typed messages from here on (e.g. a redacted password)
        if self.startup or not self.pending:
            return
        chunk, frames = self.framer.feed(self.pending)
        self.pending = b""
        for mtype, start, end in frames:
            yield "msg", (mtype, chunk[start:end])


class Transcript:
    """Recorded events in, transcript lines out (``feed`` per event, ``finish`` at the end)."""

    def __init__(self, first_rows: int = FIRST_ROWS) -> None:
        self.first_rows = first_rows
        self.t0: int | None = None
        self.agent = _Stream("agent", startup=True)
        self.proxy = _Stream("proxy", startup=False)
        self.answers_due = 0  # SSLRequest / GSSENCRequest answered by one byte on the proxy side
        self.columns: list[m.Field] = []
        self.rows: list[list[bytes | None]] = []
        self.row_count = 0

    def feed(self, event: Event) -> list[str]:
        if self.t0 is None:
            self.t0 = event.ts_ns
        stamp = f"+{(event.ts_ns - self.t0) / 1e9:9.3f}s"
        if event.direction == Direction.DECISION:
            return [f"{stamp} == {self._decision(event)}"]
        stream = self.agent if event.direction == Direction.AGENT_TO_PROXY else self.proxy
        out: list[str] = []
        try:
            due = self.answers_due if stream is self.proxy else 0
            for kind, value in stream.messages(event.payload, due):
                line = self._line(stream is self.agent, kind, value)
                if line:
                    out.append(f"{stamp} {line}")
        except ProtocolViolation as e:
            stream.broken = True
            out.append(f"{stamp} !! {stream.framer.peer} stream undecodable from here ({e}); see --raw")
        return out

    def finish(self) -> list[str]:
        return ["           (result still open: " + self._result("incomplete") + ")"] if self.columns else []

    def _decision(self, event: Event) -> str:
        try:
            payload = event.decision()
        except RecordingFormatError:
            payload = {"raw": event.payload.hex()}
        try:
            name = EventKind(event.kind).name
        except ValueError:
            name = f"KIND {event.kind}"
        body = " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in sorted(payload.items()))
        return f"{name} {body}".rstrip()

    def _line(self, from_agent: bool, kind: str, value: Any) -> str | None:
        if kind == "answer":
            self.answers_due -= 1
            return "← TLS accepted" if value == b"S" else "← encryption refused ('N')"
        if kind == "startup":
            if isinstance(value, m.SSLRequest | m.GSSENCRequest):
                self.answers_due += 1
                return f"→ {type(value).__name__}"
            if isinstance(value, m.StartupMessage):
                params = " ".join(f"{k}={v}" for k, v in value.params.items())
                return f"→ StartupMessage {params}"
            return f"→ {type(value).__name__}"
        mtype, body = value
        return self._agent(mtype, body) if from_agent else self._backend(mtype, body)

    def _agent(self, mtype: int, body: bytes) -> str | None:
        t = chr(mtype)
        if t == "Q":
            return f"→ Query: {m.parse_query(body)}"
        if t == "P":
            parsed = m.parse_parse(body)
            return f"→ Parse {parsed.name or '(unnamed)'}: {parsed.query}"
        if t == "E":
            return "→ Execute"
        if t == "p":
            return "→ password [redacted]"
        if t == "X":
            return "→ Terminate"
        if t == "d":
            return f"→ CopyData ({len(body)} bytes)"
        if t == "c":
            return "→ CopyDone"
        if t == "f":
            return "→ CopyFail"
        return None  # Bind, Describe, Sync, Flush, Close: implied by the lines around them

    def _backend(self, mtype: int, body: bytes) -> str | None:
        t = chr(mtype)
        if t == "T":
            self.columns = m.parse_row_description(body)
            self.rows, self.row_count = [], 0
            return None
        if t == "D":
            self.row_count += 1
            if len(self.rows) < self.first_rows:
                self.rows.append(m.parse_data_row(body))
            return None
        if t == "C":
            tag = m.parse_command_complete(body)
            if self.columns:
                return "← " + self._result(tag)
            return f"← {tag}"
        if t in "EN":
            f = m.parse_error_fields(body)
            sev = f.get(m.FIELD_SEVERITY_NONLOCALIZED) or f.get(m.FIELD_SEVERITY, "")
            detail = f" ({f[m.FIELD_DETAIL]})" if m.FIELD_DETAIL in f else ""
            return f"← {sev} {f.get(m.FIELD_CODE, '')}: {f.get(m.FIELD_MESSAGE, '')}{detail}"
        if t == "R":
            code, _ = m.parse_authentication(body)
            return "← authenticated" if code == 0 else f"← authentication request {code}"
        if t == "I":
            return "← (empty query)"
        if t == "A":
            return f"← notification ({len(body)} bytes)"
        if t in "GH":
            return "← COPY " + ("from agent" if t == "G" else "to agent")
        return None

    def _result(self, tag: str) -> str:
        names = [c.name for c in self.columns]
        lines = [f"{tag}: {self.row_count} row{'s' if self.row_count != 1 else ''}, columns ({', '.join(names)})"]
        for row in self.rows:
            cells = [self._value(v, c) for v, c in zip(row, self.columns, strict=False)]
            lines.append("             | " + " | ".join(cells))
        if self.row_count > len(self.rows):
            lines.append(f"             ... {self.row_count - len(self.rows)} more")
        self.columns, self.rows, self.row_count = [], [], 0
        return "\n".join(lines)

    @staticmethod
    def _value(value: bytes | None, column: m.Field) -> str:
        if value is None:
            return "NULL"
        if column.format == 1:
            return f"<binary {len(value)} bytes>"
        return _cut(value.decode("utf-8", "replace"), _VALUE_WIDTH)


# ---------------------------------------------------------------------- formatting


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n}{unit}"
        n //= 1024
    return f"{n}GiB"

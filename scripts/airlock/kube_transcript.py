"""``airlock replay`` for a Kubernetes session: requests as commands, with their results, and exec
sessions as terminal output.

Recorded events in (docs/recording-format.md, "HTTP exchanges"), lines out. Each exchange is shown as
its request (``→ [n] kubectl delete: DELETE /apis/apps/v1/...``, with what it does and the verdict when it
was not a plain allow) and, once it is over, its result: a Status' message, a list's item count and first
names, a Table's first rows, a log's lines. A watch shows its events as they came; an exec, attach or
port-forward stream shows what the terminal showed (stdout and stderr as they were sent, masked), what
was typed, and how the command ended. Discovery and OpenAPI requests get one line each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from shared.k8s.recorded import ERROR, RESIZE, STDIN, RecordedPayloadError, parse_head, parse_piece
from shared.recording.format import Direction, Event, EventKind, RecordingFormatError

FIRST_ROWS = 5
_BODY_LIMIT = 4 << 20  # bytes of a body kept to summarise it
_TERMINAL = "  │ "


def is_kubernetes(event: Event) -> bool:
    """Whether a recording whose first event this is comes from the Kubernetes gateway."""
    if event.direction != Direction.DECISION or event.kind != EventKind.GRANT:
        return event.kind in (EventKind.HTTP_HEAD, EventKind.HTTP_BODY, EventKind.STREAM)
    try:
        backend = event.decision().get("backend") or {}
    except RecordingFormatError:
        return False
    return isinstance(backend, dict) and backend.get("engine") == "kubernetes"


@dataclass
class _Exchange:
    number: int
    request: dict[str, Any] = field(default_factory=dict)
    status_line: str = ""
    content_type: str = ""
    body: bytearray = field(default_factory=bytearray)
    streaming: bool = False
    watch_buffer: bytes = b""
    terminal: bytes = b""


class KubeTranscript:
    """Recorded events in, transcript lines out (``feed`` per event, ``finish`` at the end)."""

    def __init__(self, first_rows: int = FIRST_ROWS) -> None:
        self.first_rows = first_rows
        self.t0: int | None = None
        self.exchanges: dict[int, _Exchange] = {}

    def feed(self, event: Event) -> list[str]:
        if self.t0 is None:
            self.t0 = event.ts_ns
        stamp = f"+{(event.ts_ns - self.t0) / 1e9:9.3f}s"
        try:
            lines = self._event(event)
        except (RecordedPayloadError, RecordingFormatError, ValueError) as e:
            lines = [f"!! event {event.seq} unreadable ({e})"]
        return [f"{stamp} {line}" for line in lines]

    def finish(self) -> list[str]:
        out = []
        for ex in self.exchanges.values():
            if ex.terminal:
                out += self._terminal(ex, final=True)
            out.append(f"           [{ex.number}] (still open when the recording ended)")
        return out

    def _event(self, event: Event) -> list[str]:
        if event.direction == Direction.DECISION:
            return self._decision(event)
        piece = parse_piece(event.kind, event.payload)
        ex = self.exchanges.setdefault(piece.exchange, _Exchange(piece.exchange))
        from_agent = event.direction == Direction.AGENT_TO_PROXY
        if event.kind == EventKind.HTTP_HEAD:
            if not from_agent:
                ex.status_line, headers = parse_head(piece.data)
                ex.content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
                ex.streaming = _watching(ex) or ex.status_line.split(" ")[1:2] == ["101"]
                if ex.streaming and not ex.status_line.startswith("HTTP/1.1 101"):
                    return [f"← [{ex.number}] {_status(ex.status_line)} (watching)"]
            return []
        if event.kind == EventKind.HTTP_BODY:
            if from_agent:
                return [f"  [{ex.number}] body: {_describe_body(piece.data)}"]
            if _watching(ex):
                return self._watch(ex, piece.data)
            if len(ex.body) < _BODY_LIMIT:
                ex.body += piece.data[: _BODY_LIMIT - len(ex.body)]
            return []
        if event.kind == EventKind.STREAM:
            return self._stream(ex, piece.channel or 0, piece.data, from_agent)
        return [f"{'→' if from_agent else '←'} ({len(event.payload)} bytes of kind {event.kind})"]

    # ------------------------------------------------------------------ decisions

    def _decision(self, event: Event) -> list[str]:
        payload = event.decision()
        try:
            name = EventKind(event.kind).name
        except ValueError:
            name = f"KIND {event.kind}"
        if event.kind == EventKind.REQUEST:
            self.exchanges[int(payload["exchange"])] = ex = _Exchange(int(payload["exchange"]), payload)
            return [] if payload.get("detail") == "summary" else [self._request_line(ex)]
        if event.kind == EventKind.EXCHANGE_END:
            ex = self.exchanges.pop(int(payload["exchange"]), _Exchange(int(payload["exchange"])))
            return self._result(ex, payload)
        if event.kind == EventKind.GRANT:
            keep = ("identity", "target", "policy_version", "expires_at", "mode", "auth_method")
            return ["== GRANT " + " ".join(f"{k}={json.dumps(payload[k])}" for k in keep if k in payload)]
        if event.kind == EventKind.MASK_COUNTS and "exchange" in payload:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(payload.get("counts", {}).items()))
            return [f"== [{payload['exchange']}] masked: {counts}"]
        body = " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in sorted(payload.items())
                        if k not in ("protocol", "exchange"))  # fmt: skip
        where = f"[{payload['exchange']}] " if "exchange" in payload else ""
        return [f"== {where}{name} {body}".rstrip()]

    def _request_line(self, ex: _Exchange) -> str:
        r = ex.request
        command = f"{r['kubectl_command']}: " if r.get("kubectl_command") else ""
        line = f"→ [{ex.number}] {command}{r.get('method', '')} {r.get('target', '')}"
        what = _what(r)
        if what:
            line += f"  ({what})"
        if r.get("action") != "allow" or r.get("features"):
            dry = "" if r.get("enforced", True) else " (dry run)"
            line += f"  [{r.get('action')}{dry}: rule {r.get('rule')}]"
        return line

    # ------------------------------------------------------------------ results

    def _result(self, ex: _Exchange, end: dict[str, Any]) -> list[str]:
        r = ex.request
        if r.get("detail") == "summary":
            return [f"  [{ex.number}] {r.get('method', '')} {r.get('target', '')} → {end.get('status')} "
                    f"({'discovery' if r else 'request'}, {_size(int(end.get('bytes', 0)))})"]  # fmt: skip
        out: list[str] = []
        if ex.terminal:
            out += self._terminal(ex, final=True)
        if ex.streaming:
            why = f": {end['reason']}" if end.get("reason") else ""
            items = f", {end['items']} events" if "items" in end else ""
            out.append(f"← [{ex.number}] stream ended ({_size(int(end.get('bytes', 0)))}{items}){why}")
            return out
        out.append(f"← [{ex.number}] {_status(ex.status_line)}: {self._summary(ex)}")
        out += self._details(ex)
        return out

    def _summary(self, ex: _Exchange) -> str:
        if not ex.body:
            return "(no body)"
        value = _json(bytes(ex.body))
        if value is None:
            text = bytes(ex.body).decode("utf-8", "replace")
            lines = text.splitlines()
            return f"{len(lines)} line{'s' if len(lines) != 1 else ''} of text"
        if not isinstance(value, dict):
            return type(value).__name__
        kind = value.get("kind", "")
        if kind == "Status":
            head = " ".join(str(value[k]) for k in ("status", "reason") if value.get(k))
            return f"{head}: {value['message']}" if value.get("message") else head
        if kind == "Table":
            rows = value.get("rows") or []
            return f"Table, {len(rows)} row{'s' if len(rows) != 1 else ''}"
        if isinstance(value.get("items"), list):
            names = [str((i.get("metadata") or {}).get("name", "")) for i in value["items"] if isinstance(i, dict)]
            shown = ", ".join(names[: self.first_rows]) + (" ..." if len(names) > self.first_rows else "")
            return f"{kind or 'list'}: {len(names)} item{'s' if len(names) != 1 else ''} ({shown})"
        name = (value.get("metadata") or {}).get("name", "") if isinstance(value.get("metadata"), dict) else ""
        return f"{kind} {name}".strip() or "object"

    def _details(self, ex: _Exchange) -> list[str]:
        value = _json(bytes(ex.body))
        if isinstance(value, dict) and value.get("kind") == "Table":
            columns = [c.get("name", "") for c in value.get("columnDefinitions") or [] if isinstance(c, dict)]
            rows = value.get("rows") or []
            out = ["             | " + " | ".join(columns)] if columns else []
            for row in rows[: self.first_rows]:
                cells = row.get("cells") if isinstance(row, dict) else None
                out.append("             | " + " | ".join(str(c) for c in cells or []))
            if len(rows) > self.first_rows:
                out.append(f"             ... {len(rows) - self.first_rows} more")
            return out
        if value is None and ex.body:
            lines = bytes(ex.body).decode("utf-8", "replace").splitlines()
            out = [_TERMINAL + line for line in lines[: self.first_rows * 4]]
            if len(lines) > self.first_rows * 4:
                out.append(f"{_TERMINAL}... {len(lines) - self.first_rows * 4} more lines")
            return out
        return []

    def _watch(self, ex: _Exchange, data: bytes) -> list[str]:
        ex.watch_buffer += data
        out = []
        *complete, ex.watch_buffer = ex.watch_buffer.split(b"\n")
        for line in complete:
            event = _json(line)
            if not isinstance(event, dict):
                continue
            obj = event.get("object") if isinstance(event.get("object"), dict) else {}
            assert isinstance(obj, dict)
            if obj.get("kind") == "Table":
                rows = [r for r in obj.get("rows") or [] if isinstance(r, dict)]
                what = "Table " + ", ".join(str(((r.get("object") or {}).get("metadata") or {}).get("name", ""))
                                            for r in rows)
            elif obj.get("kind") == "Status":
                what = f"Status {obj.get('reason', '')}: {obj.get('message', '')}"
            else:
                what = f"{obj.get('kind', '')} {(obj.get('metadata') or {}).get('name', '')}"
            out.append(f"← [{ex.number}] {event.get('type', '?')} {what}".rstrip())
        return out

    def _stream(self, ex: _Exchange, channel: int, data: bytes, from_agent: bool) -> list[str]:
        if from_agent:
            if channel == STDIN:
                return [f"  [{ex.number}] ⌨ {data.decode('utf-8', 'replace')!r}"]
            if channel == RESIZE:
                return []
            return [f"  [{ex.number}] → channel {channel}: {len(data)} bytes"]
        if channel == ERROR:
            value = _json(data)
            lines = self._terminal(ex, final=True)
            if isinstance(value, dict) and value.get("status") == "Success":
                return [*lines, f"  [{ex.number}] exit: Success"]
            message = value.get("message", "") if isinstance(value, dict) else data.decode("utf-8", "replace")
            return [*lines, f"  [{ex.number}] exit: {message}"]
        if channel in (1, 2):
            ex.terminal += data
            return self._terminal(ex, final=False)
        return [f"  [{ex.number}] ← channel {channel}: {len(data)} bytes"]

    def _terminal(self, ex: _Exchange, *, final: bool) -> list[str]:
        text = ex.terminal.decode("utf-8", "replace")
        if final:
            ex.terminal = b""
            return [_TERMINAL + line for line in text.splitlines()]
        if "\n" not in text:
            return []
        complete, _, rest = text.rpartition("\n")
        ex.terminal = rest.encode()
        return [_TERMINAL + line for line in complete.split("\n")]


def _watching(ex: _Exchange) -> bool:
    return "stream=watch" in ex.content_type or ex.request.get("verb") == "watch"


def _what(r: dict[str, Any]) -> str:
    if not r.get("resource_request"):
        return ""
    resource = r.get("resource", "") + (f".{r['group']}" if r.get("group") else "")
    if r.get("subresource"):
        resource += f"/{r['subresource']}"
    text = f"{r.get('judged_as') or r.get('verb', '')} {resource}"
    if r.get("name"):
        text += f" {r['name']}"
    if r.get("namespace") and r.get("resource") != "namespaces":
        text += f" -n {r['namespace']}"
    if r.get("features"):
        text += " with " + ", ".join(r["features"])
    if isinstance(r.get("body"), dict) and r["body"].get("unread"):
        text += f"; body not read: {r['body']['unread']}"
    return text


def _status(line: str) -> str:
    return line.removeprefix("HTTP/1.1 ")


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _describe_body(data: bytes) -> str:
    value = _json(data)
    if isinstance(value, dict):
        name = (value.get("metadata") or {}).get("name", "") if isinstance(value.get("metadata"), dict) else ""
        what = f"{value.get('kind', 'JSON object')} {name}".strip()
        return f"{what} ({_size(len(data))})"
    if isinstance(value, list):
        return f"JSON patch, {len(value)} operation{'s' if len(value) != 1 else ''} ({_size(len(data))})"
    return f"{_size(len(data))}"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n} {unit}"
        n //= 1024
    return f"{n} GiB"

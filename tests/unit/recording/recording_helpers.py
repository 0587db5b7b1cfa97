"""Builders for recorded sessions: a recorder with a fake clock, signed and written to a directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.recording.format import (
    MANIFEST_NAME,
    Direction,
    EventKind,
    Manifest,
    SessionMeta,
    SessionStatus,
    encode_manifest,
    format_timestamp,
)
from shared.recording.recorder import SealedChunk, SessionRecorder
from shared.recording.signing import LocalKeySigner, sign_manifest

T0 = 1_735_700_000_000_000_000  # 2025-01-01T02:53:20Z


def meta(session_id: str = "ses_01TEST") -> SessionMeta:
    return SessionMeta(
        session_id=session_id,
        identity="repo:acme/etl:ref:refs/heads/main",
        target="orders",
        database="orders",
        client_addr="10.0.0.7:51234",
        proxy_id="proxy-a",
        started_at=format_timestamp(T0),
        retain_until="2026-01-01T00:00:00.000000Z",
        mode="buffered",
        policy_version="7",
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        self.now += 1_000
        return self.now


@dataclass
class Recorded:
    chunks: list[SealedChunk]
    manifest: Manifest
    signer: LocalKeySigner

    def write(self, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        for c in self.chunks:
            (dest / c.key.rsplit("/", 1)[-1]).write_bytes(c.data)
        (dest / MANIFEST_NAME).write_bytes(encode_manifest(self.manifest))
        return dest


def record_session(signer: LocalKeySigner, *, rounds: int = 8, chunk_size: int = 200) -> Recorded:
    """A plausible session: grant, startup + password, then query / result rounds, small chunks."""
    rec = SessionRecorder(meta(), chunk_size=chunk_size, clock=FakeClock())
    chunks: list[SealedChunk] = []

    def keep(c: SealedChunk | None) -> None:
        if c is not None:
            chunks.append(c)

    keep(rec.record_decision(EventKind.GRANT, {"identity": "ci", "policy_version": "7", "expires_at": "x"}))
    keep(rec.record_auth_bytes(b"p\x00\x00\x00\x0bsecret\x00"))
    for i in range(rounds):
        q = f"SELECT {i}".encode() + b"\0"
        keep(rec.record_bytes(Direction.AGENT_TO_PROXY, b"Q" + (len(q) + 4).to_bytes(4, "big") + q, statements=1))
        keep(rec.record_bytes(Direction.PROXY_TO_AGENT, b"D" * (30 + i)))
    sealed = rec.seal(SessionStatus.CLOSED)
    keep(sealed.last_chunk)
    return Recorded(chunks, sign_manifest(sealed.manifest, signer), signer)

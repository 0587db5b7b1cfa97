"""verify_session on a local directory: a clean session passes; every kind of tampering is named."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from recording_helpers import Recorded, meta

from shared.recording.format import (
    MANIFEST_NAME,
    ChunkEntry,
    Counts,
    Event,
    Manifest,
    SessionStatus,
    encode_chunk,
    encode_manifest,
)
from shared.recording.signing import LocalKeySigner, load_public_key, sign_manifest, verify_manifest_signature
from shared.recording.verify import DirectorySource, verify_session


def _verify(path: Path, signer: LocalKeySigner) -> str | None:
    report = verify_session(DirectorySource(path), signer.public_key_der())
    assert report.ok == (report.defect is None)
    return report.defect


def test_clean_session_verifies(recorded: Recorded, signer: LocalKeySigner, tmp_path: Path) -> None:
    assert len(recorded.chunks) >= 4
    report = verify_session(DirectorySource(recorded.write(tmp_path)), signer.public_key_der())
    assert report.ok, report.defect
    assert report.chunks_checked == len(recorded.chunks)
    assert report.events_checked == recorded.manifest.counts.events
    assert not report.retention_checked  # a directory has no Object Lock


def test_pem_public_key_works_too(recorded: Recorded, signer: LocalKeySigner) -> None:
    from cryptography.hazmat.primitives import serialization

    pem = load_public_key(signer.public_key_der()).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert verify_manifest_signature(recorded.manifest, pem) is None


def test_modified_byte_in_a_chunk(recorded: Recorded, signer: LocalKeySigner, tmp_path: Path) -> None:
    d = recorded.write(tmp_path)
    f = d / "00000002.chunk"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0x01
    f.write_bytes(bytes(data))
    assert _verify(d, signer) == "chunk 2: sha256 mismatch"


def test_dropped_chunk(recorded: Recorded, signer: LocalKeySigner, tmp_path: Path) -> None:
    d = recorded.write(tmp_path)
    (d / "00000001.chunk").unlink()
    assert _verify(d, signer) == "chunk 1: missing (00000001.chunk)"


def test_reordered_chunks(recorded: Recorded, signer: LocalKeySigner, tmp_path: Path) -> None:
    d = recorded.write(tmp_path)
    a, b = d / "00000001.chunk", d / "00000002.chunk"
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    assert _verify(d, signer) == "chunk 1: sha256 mismatch (it holds chunk 2's content: chunks reordered)"


def test_manifest_edited_without_resigning(recorded: Recorded, signer: LocalKeySigner, tmp_path: Path) -> None:
    d = recorded.write(tmp_path)
    doc = json.loads((d / MANIFEST_NAME).read_bytes())
    doc["session"]["identity"] = "someone-else"
    (d / MANIFEST_NAME).write_text(json.dumps(doc))
    assert _verify(d, signer) == "manifest: manifest signature does not verify with the given public key"


def test_manifest_resigned_by_another_key(recorded: Recorded, signer: LocalKeySigner, tmp_path: Path) -> None:
    d = recorded.write(tmp_path)
    forged = dataclasses.replace(recorded.manifest, status=SessionStatus.INCOMPLETE)
    forger = LocalKeySigner(key_id=signer.key_id)  # even claiming the same key id
    (d / MANIFEST_NAME).write_bytes(encode_manifest(sign_manifest(forged, forger)))
    assert _verify(d, signer) == "manifest: manifest signature does not verify with the given public key"


def test_unsigned_and_missing_and_garbage_manifest(recorded: Recorded, signer: LocalKeySigner, tmp_path: Path) -> None:
    d = recorded.write(tmp_path)
    (d / MANIFEST_NAME).write_bytes(encode_manifest(dataclasses.replace(recorded.manifest, signature=None)))
    assert _verify(d, signer) == "manifest: manifest is not signed"
    (d / MANIFEST_NAME).write_bytes(b"{not json")
    assert _verify(d, signer) == "manifest: not JSON"
    (d / MANIFEST_NAME).unlink()
    assert _verify(d, signer) == "manifest: missing"


def test_extra_object_not_in_manifest(recorded: Recorded, signer: LocalKeySigner, tmp_path: Path) -> None:
    d = recorded.write(tmp_path)
    (d / "00000099.chunk").write_bytes(b"smuggled")
    assert _verify(d, signer) == "unexpected object 00000099.chunk: not named by the manifest"


def _signed_session(
    events_per_chunk: list[list[int]], signer: LocalKeySigner, dest: Path, prevs: list[bytes] | None = None
) -> Path:
    """Chunks with the given event seqs, a consistent manifest, correctly signed: only seqs are wrong."""
    import hashlib

    m0 = meta()
    prefix = "sessions/dt=2025-01-01/ses_01TEST/"
    dest.mkdir(exist_ok=True)
    prev = bytes(32)
    entries = []
    for i, seqs in enumerate(events_per_chunk):
        p = prevs[i] if prevs else prev
        data = encode_chunk(m0.session_id, i, p, [Event(s, s, 1, 0, b"row") for s in seqs])
        name = f"{i:08d}.chunk"
        (dest / name).write_bytes(data)
        prev = hashlib.sha256(data).digest()
        entries.append(ChunkEntry(i, prefix + name, prev.hex(), seqs[0], seqs[-1], len(data)))
    n = sum(len(s) for s in events_per_chunk)
    m = Manifest(m0, SessionStatus.CLOSED, m0.started_at, Counts(n, 0, 3 * n, 0, 0), tuple(entries), prev.hex())
    (dest / MANIFEST_NAME).write_bytes(encode_manifest(sign_manifest(m, signer)))
    return dest


def test_consistent_signed_builder_verifies(signer: LocalKeySigner, tmp_path: Path) -> None:
    assert _verify(_signed_session([[0, 1], [2], [3, 4]], signer, tmp_path), signer) is None


@pytest.mark.parametrize(
    ("seqs", "defect"),
    [
        ([[0, 1], [3, 4]], "chunk 1: sequence gap: expected event 2, found 3"),
        ([[0, 2], [3]], "chunk 0: sequence gap: expected event 1, found 2"),
        ([[0, 1], [1, 2]], "chunk 1: sequence duplicate: expected event 2, found 1"),
        ([[1, 2]], "chunk 0: sequence gap: expected event 0, found 1"),
    ],
)
def test_sequence_gaps_and_duplicates(
    seqs: list[list[int]], defect: str, signer: LocalKeySigner, tmp_path: Path
) -> None:
    assert _verify(_signed_session(seqs, signer, tmp_path), signer) == defect


def test_broken_chain_even_when_the_manifest_is_signed(signer: LocalKeySigner, tmp_path: Path) -> None:
    d = _signed_session([[0], [1], [2]], signer, tmp_path, prevs=[bytes(32), bytes(32), bytes(32)])
    assert _verify(d, signer) == "chunk 1: chain broken: its previous-chunk hash is not chunk 0's"


def test_wrong_counts(recorded: Recorded, signer: LocalKeySigner, tmp_path: Path) -> None:
    d = recorded.write(tmp_path)
    m = dataclasses.replace(recorded.manifest, counts=dataclasses.replace(recorded.manifest.counts, events=1))
    (d / MANIFEST_NAME).write_bytes(encode_manifest(sign_manifest(m, signer)))
    assert (_verify(d, signer) or "").startswith("manifest: counts say 1 events")


def test_wrong_chain_head(recorded: Recorded, signer: LocalKeySigner, tmp_path: Path) -> None:
    d = recorded.write(tmp_path)
    m = dataclasses.replace(recorded.manifest, chain_head="00" * 32)
    (d / MANIFEST_NAME).write_bytes(encode_manifest(sign_manifest(m, signer)))
    assert _verify(d, signer) == "manifest: chain head is not the hash of the last chunk"


def test_truncated_final_chunk_with_a_matching_signed_manifest_is_still_corrupt(
    signer: LocalKeySigner, tmp_path: Path
) -> None:
    d = _signed_session([[0], [1]], signer, tmp_path)
    (d / "00000001.chunk").write_bytes((d / "00000001.chunk").read_bytes()[:-1])
    assert _verify(d, signer) == "chunk 1: sha256 mismatch"

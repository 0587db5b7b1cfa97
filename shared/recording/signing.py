"""Manifest signatures: ECDSA P-256 over SHA-256 of the manifest's canonical JSON.

The private key lives in KMS (``KmsSigner``); verification needs only the public key and runs offline
with ``cryptography``, so anyone handed the key can check a recording without AWS access.
"""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any, Literal, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .format import SIGNATURE_ALGORITHM, Manifest, RecordingFormatError, Signature

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient


class SigningError(Exception):
    """The manifest could not be signed (KMS unreachable, key unusable)."""


class ManifestSigner(Protocol):
    @property
    def key_id(self) -> str: ...

    def sign(self, message: bytes) -> bytes:
        """DER-encoded ECDSA P-256 signature over SHA-256 of ``message``."""
        ...


def sign_manifest(manifest: Manifest, signer: ManifestSigner) -> Manifest:
    """The manifest with its signature block set (any previous block is ignored and replaced)."""
    sig = signer.sign(manifest.signing_bytes())
    return manifest.signed(Signature(SIGNATURE_ALGORITHM, signer.key_id, base64.b64encode(sig).decode()))


class KmsSigner:
    """Signs with a KMS asymmetric key (ECC_NIST_P256, SIGN_VERIFY). Blocking: call via a thread."""

    def __init__(
        self, key_id: str, client: KMSClient | None = None, *, message_type: Literal["DIGEST", "RAW"] = "DIGEST"
    ) -> None:
        # DIGEST: KMS signs our SHA-256, so manifests of any size work (RAW is capped at 4096 bytes;
        # it exists for emulators that do not implement DIGEST, e.g. moto 5).
        self.message_type = message_type
        self._key_id = key_id
        self._client: Any = client
        self._resolved_id = ""

    @property
    def client(self) -> KMSClient:
        if self._client is None:
            import boto3  # deferred so that verifying offline never needs boto3 configured

            self._client = boto3.client("kms")
        client: KMSClient = self._client
        return client

    @property
    def key_id(self) -> str:
        # The manifest names the key ARN that signed, not an alias that may be repointed later.
        return self._resolved_id or self._key_id

    def sign(self, message: bytes) -> bytes:
        body = hashlib.sha256(message).digest() if self.message_type == "DIGEST" else message
        try:
            resp = self.client.sign(
                KeyId=self._key_id, Message=body, MessageType=self.message_type, SigningAlgorithm="ECDSA_SHA_256"
            )
        except Exception as e:  # botocore errors have no common base we can import cheaply
            raise SigningError(f"KMS sign with {self._key_id} failed: {e}") from e
        self._resolved_id = resp.get("KeyId", self._key_id)
        signature: bytes = resp["Signature"]
        return signature

    def public_key_der(self) -> bytes:
        """The key's SubjectPublicKeyInfo (DER), for publishing to verifiers."""
        try:
            der: bytes = self.client.get_public_key(KeyId=self._key_id)["PublicKey"]
        except Exception as e:
            raise SigningError(f"KMS get_public_key for {self._key_id} failed: {e}") from e
        return der


class LocalKeySigner:
    """An in-process P-256 key: for tests and for tooling that re-signs nothing in production."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | None = None, key_id: str = "local") -> None:
        self.private_key = private_key or ec.generate_private_key(ec.SECP256R1())
        self._key_id = key_id

    @property
    def key_id(self) -> str:
        return self._key_id

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message, ec.ECDSA(hashes.SHA256()))

    def public_key_der(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def load_public_key(data: bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from PEM or DER (SubjectPublicKeyInfo, as KMS GetPublicKey returns it)."""
    try:
        key = (
            serialization.load_pem_public_key(data)
            if data.lstrip().startswith(b"-----")
            else serialization.load_der_public_key(data)
        )
    except ValueError as e:
        raise ValueError(f"not a PEM or DER public key: {e}") from e
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("public key is not ECDSA P-256")
    return key


def verify_manifest_signature(manifest: Manifest, public_key: bytes | ec.EllipticCurvePublicKey) -> str | None:
    """None if the signature is valid for this key, else why not (a sentence for the report)."""
    sig = manifest.signature
    if sig is None:
        return "manifest is not signed"
    if sig.algorithm != SIGNATURE_ALGORITHM:
        return f"manifest signature algorithm {sig.algorithm!r} is not {SIGNATURE_ALGORITHM}"
    key = public_key if isinstance(public_key, ec.EllipticCurvePublicKey) else load_public_key(public_key)
    try:
        key.verify(sig.raw(), manifest.signing_bytes(), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, RecordingFormatError):
        return "manifest signature does not verify with the given public key"
    return None

"""A small local OIDC issuer for the local stack and tests (127.0.0.1 only).

It serves ``/.well-known/openid-configuration`` and ``/jwks.json`` and mints ES256 tokens with an EC
P-256 key persisted in ``state_dir`` (so tokens stay verifiable across restarts). Use ``IssuerServer``
inside a running event loop, or ``start_issuer`` from synchronous code: it runs the server on its own
event loop in a daemon thread.

    python -m airlock.oidc_issuer --state-dir .airlock --port 8710
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

KEY_FILE = "oidc-issuer-key.pem"
ALGORITHM = "ES256"


def _load_or_create_key(state_dir: Path) -> ec.EllipticCurvePrivateKey:
    path = state_dir / KEY_FILE
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path} does not hold an EC private key")
        return key
    state_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.touch(mode=0o600)  # private key: owner only, from the first byte
    path.write_bytes(pem)
    return key


class IssuerKeys:
    """The signing key, its public JWK, and token minting (no I/O beyond the key file)."""

    def __init__(self, state_dir: Path) -> None:
        self._key = _load_or_create_key(state_dir)
        jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self._key.public_key()))
        self.kid = _thumbprint(jwk)
        self.jwk = {**jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}

    def mint(
        self,
        issuer: str,
        subject: str,
        audience: str | list[str],
        ttl_seconds: int = 300,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer, "sub": subject, "aud": audience, "iat": now, "nbf": now,
            "exp": now + ttl_seconds, "jti": secrets.token_hex(8),
        }  # fmt: skip
        claims.update(extra_claims or {})
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})


def _thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint of an EC public JWK: a stable kid derived from the key itself."""
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


class IssuerServer:
    """The issuer's HTTP endpoints on an aiohttp server, in the caller's event loop."""

    def __init__(self, state_dir: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.keys = IssuerKeys(state_dir)
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks.json", self._jwks)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        port = self._runner.addresses[0][1]  # the bound port when port=0
        self.url = f"http://{self._host}:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def mint(
        self,
        subject: str,
        audience: str | list[str] = "airlock",
        ttl_seconds: int = 300,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A signed token from this issuer (``iss`` is the server's URL)."""
        return self.keys.mint(self.url, subject, audience, ttl_seconds, extra_claims)

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.url,
                "jwks_uri": f"{self.url}/jwks.json",
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": [ALGORITHM],
                "claims_supported": ["sub", "aud", "exp", "iat", "iss", "nbf", "jti"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": [self.keys.jwk]})


class RunningIssuer:
    """An ``IssuerServer`` on its own event loop in a daemon thread, for synchronous callers."""

    def __init__(self, state_dir: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = IssuerServer(state_dir, host, port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="oidc-issuer", daemon=True)
        self._thread.start()
        started: Future[str] = asyncio.run_coroutine_threadsafe(self._server.start(), self._loop)
        self.url = started.result(timeout=10)

    @property
    def keys(self) -> IssuerKeys:
        return self._server.keys

    def mint(
        self,
        subject: str,
        audience: str | list[str] = "airlock",
        ttl_seconds: int = 300,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        return self._server.mint(subject, audience, ttl_seconds, extra_claims)

    def stop(self) -> None:
        if not self._loop.is_running():
            return
        asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def start_issuer(state_dir: Path | str, port: int = 0, host: str = "127.0.0.1") -> RunningIssuer:
    """Start the issuer in a background thread; ``.url``, ``.mint(...)``, ``.stop()``."""
    return RunningIssuer(Path(state_dir), host, port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local OIDC issuer for Airlock's local stack")
    parser.add_argument("--state-dir", type=Path, default=Path(".airlock"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mint", metavar="SUBJECT", help="print a token for SUBJECT and exit")
    parser.add_argument("--audience", default="airlock")
    parser.add_argument("--ttl", type=int, default=300)
    parser.add_argument("--issuer-url", help="with --mint: the issuer URL (default http://127.0.0.1:PORT)")
    args = parser.parse_args(argv)
    if args.mint:
        issuer = args.issuer_url or f"http://127.0.0.1:{args.port}"
        print(IssuerKeys(args.state_dir).mint(issuer, args.mint, args.audience, args.ttl))
        return

    async def serve() -> None:
        server = IssuerServer(args.state_dir, port=args.port)
        print(f"OIDC issuer at {await server.start()}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    asyncio.run(serve())


if __name__ == "__main__":
    main()

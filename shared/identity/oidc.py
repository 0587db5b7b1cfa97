"""Verify OIDC JWTs (GitHub Actions, GitLab, Kubernetes, the local issuer) against the policy.

Only issuers named in the policy are ever contacted: the token's unverified ``iss`` selects one of
them, never a URL of the token's choosing. Discovery documents and JWKS are cached per issuer at
module level, so warm Lambda invocations verify without network I/O. Only asymmetric algorithms are
accepted: ``none`` and HS* would let anyone who knows a public key mint tokens.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "iat"]
_HTTP_TIMEOUT_SECONDS = 5.0


class TokenError(Exception):
    """The token does not prove an identity. The message is safe to show the agent (no token text)."""


class IssuerUnavailable(TokenError):
    """The issuer's discovery document or keys could not be fetched: the token cannot be verified now."""


@dataclass(slots=True)
class _IssuerKeys:
    jwks_uri: str
    client: jwt.PyJWKClient
    discovered_at: float


_issuers: dict[str, _IssuerKeys] = {}
_issuers_lock = threading.Lock()


def _fetch_json(url: str) -> dict[str, Any]:
    if not url.startswith(("https://", "http://")):
        raise IssuerUnavailable(f"refusing to fetch non-HTTP URL {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT_SECONDS) as resp:
            doc = json.load(resp)
    except (OSError, ValueError) as e:
        raise IssuerUnavailable(f"could not fetch {url}: {e.__class__.__name__}") from e
    if not isinstance(doc, dict):
        raise IssuerUnavailable(f"{url} did not return a JSON object")
    return doc


def _keys_for(issuer: str, cache_seconds: float) -> jwt.PyJWKClient:
    """The (cached) JWKS client for a trusted issuer, via its discovery document."""
    now = time.monotonic()
    with _issuers_lock:
        entry = _issuers.get(issuer)
        if entry and now - entry.discovered_at < cache_seconds:
            return entry.client
    doc = _fetch_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
    # OIDC Discovery 4.3: the document must name exactly the issuer we asked about.
    if str(doc.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
        raise IssuerUnavailable(f"discovery document of {issuer} names a different issuer")
    jwks_uri = doc.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
        raise IssuerUnavailable(f"discovery document of {issuer} has no usable jwks_uri")
    with _issuers_lock:
        entry = _issuers.get(issuer)
        if entry and entry.jwks_uri == jwks_uri:
            entry.discovered_at = now  # keep the client and its cached keys
        else:
            client = jwt.PyJWKClient(
                jwks_uri,
                cache_keys=True,
                cache_jwk_set=True,
                lifespan=int(max(cache_seconds, 1)),
                timeout=int(_HTTP_TIMEOUT_SECONDS),
            )
            entry = _IssuerKeys(jwks_uri=jwks_uri, client=client, discovered_at=now)
            _issuers[issuer] = entry
        return entry.client


def clear_cache() -> None:
    """Forget cached discovery documents and keys (tests, key rotation drills)."""
    with _issuers_lock:
        _issuers.clear()


def unverified_issuer(token: str) -> tuple[str, str]:
    """(issuer, algorithm) a well-formed JWT claims, before anything is verified; ``TokenError`` if ``token`` does
    not have a JWT's shape, names a disallowed algorithm or no issuer. No I/O: the proxy calls this
    before it spends a control-plane call on a password."""
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as e:
        raise TokenError("password is neither an Airlock key (ak_...) nor a well-formed JWT") from e
    alg = header.get("alg")
    if alg not in ALLOWED_ALGORITHMS:
        raise TokenError(f"token algorithm {alg!r} is not allowed (asymmetric algorithms only)")
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise TokenError("token has no issuer ('iss' claim)")
    return issuer, alg


def verify_token(
    token: str,
    audiences_for: Callable[[str], Sequence[str]],
    *,
    leeway_seconds: int,
    cache_seconds: float,
) -> dict[str, Any]:
    """Verify ``token`` and return its claims; raise ``TokenError`` with an agent-safe reason.

    ``audiences_for(issuer)`` says which audiences the policy accepts from an issuer; no audiences
    means the issuer is not trusted and is never contacted.
    """
    issuer, alg = unverified_issuer(token)
    audiences = list(audiences_for(issuer))
    if not audiences:
        raise TokenError(f"token issuer {issuer!r} is not trusted by the policy")
    client = _keys_for(issuer, cache_seconds)
    try:
        signing_key = client.get_signing_key_from_jwt(token)
    except jwt.PyJWKClientConnectionError as e:
        raise IssuerUnavailable(f"could not fetch signing keys of {issuer}") from e
    except jwt.PyJWKClientError as e:
        raise TokenError(f"token is signed by a key that {issuer} does not publish") from e
    except jwt.InvalidTokenError as e:
        raise TokenError("token header is invalid") from e
    if signing_key.algorithm_name not in ALLOWED_ALGORITHMS:
        raise TokenError(f"{issuer} publishes a key for a disallowed algorithm")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            signing_key.key,
            # Pin to the published key's algorithm: the header cannot pick a weaker or different one.
            algorithms=[signing_key.algorithm_name],
            audience=audiences,
            issuer=issuer,
            leeway=leeway_seconds,
            options={"require": _REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError as e:
        raise TokenError("token has expired") from e
    except jwt.ImmatureSignatureError as e:
        raise TokenError("token is not valid yet (nbf/iat in the future)") from e
    except jwt.InvalidAudienceError as e:
        raise TokenError(f"token audience is not accepted (expected one of {audiences})") from e
    except jwt.InvalidIssuerError as e:
        raise TokenError("token issuer is invalid") from e
    except jwt.MissingRequiredClaimError as e:
        raise TokenError(f"token lacks the required {e.claim!r} claim") from e
    except jwt.InvalidSignatureError as e:
        raise TokenError("token signature is invalid") from e
    except jwt.InvalidAlgorithmError as e:
        raise TokenError(f"token algorithm {alg!r} does not match the issuer's key") from e
    except jwt.InvalidTokenError as e:
        raise TokenError(f"token is invalid ({e.__class__.__name__})") from e
    return claims

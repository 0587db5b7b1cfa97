"""Is a password shaped like a credential Airlock accepts? A cheap, local check before authorize.

A password is either an Airlock key (``ak_<key id>_<secret>``) or an OIDC JWT (three base64url parts, an
asymmetric algorithm, an issuer). Anything else can never be granted, so the proxy refuses it without
invoking the control plane; the authorize Lambda applies the same checks first (``parse_key``,
``unverified_issuer``), so both refuse with the same words.
"""

from __future__ import annotations

from shared.identity.keys import KeyFormatError, looks_like_key, parse_key
from shared.identity.oidc import TokenError, unverified_issuer


def token_shape_problem(token: str) -> str | None:
    """Why ``token`` cannot be a credential (agent-safe, never quotes it), or None if it has the shape of one."""
    if not token:
        return "no password: present an OIDC token or an Airlock key (ak_...)"
    try:
        if looks_like_key(token):
            parse_key(token)
        else:
            unverified_issuer(token)
    except (KeyFormatError, TokenError) as e:
        return str(e) if isinstance(e, KeyFormatError) else f"OIDC {e}"
    return None

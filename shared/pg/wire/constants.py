"""Protocol constants: request codes, message type bytes, limits."""

from __future__ import annotations

from typing import Final

# Startup-packet request codes (the int32 that follows the length).
PROTOCOL_3_0: Final = 3 << 16
PROTOCOL_3_2: Final = (3 << 16) | 2
SSL_REQUEST_CODE: Final = 80877103
GSSENC_REQUEST_CODE: Final = 80877104
CANCEL_REQUEST_CODE: Final = 80877102

# A startup packet is small; the server rejects anything above 10000 bytes (MAX_STARTUP_PACKET_LENGTH).
MAX_STARTUP_PACKET: Final = 10_000
# Messages the server reads with PQ_SMALL_MESSAGE_LIMIT (no payload beyond a few identifiers).
SMALL_MESSAGE_LIMIT: Final = 10_000
# PQ_LARGE_MESSAGE_LIMIT: the server's cap on any message (MaxAllocSize - 1).
LARGE_MESSAGE_LIMIT: Final = 0x3FFFFFFF - 1
# Protocol 3.2 allows cancel keys of up to 256 bytes.
MAX_CANCEL_KEY: Final = 256

# Frontend (agent -> server) message types.
FRONTEND_TYPES: Final = frozenset(b"QPBEDCSHFXdcfp")
# Frontend types the server reads with the small-message limit.
FRONTEND_SMALL: Final = frozenset(b"CDEHSXc")

# Authentication request codes (backend 'R' message).
AUTH_OK: Final = 0
AUTH_CLEARTEXT: Final = 3
AUTH_MD5: Final = 5
AUTH_SASL: Final = 10
AUTH_SASL_CONTINUE: Final = 11
AUTH_SASL_FINAL: Final = 12

"""Connecting to the target PostgreSQL: TLS negotiation, startup, and authentication.

The proxy authenticates to the backend with the credential from Secrets Manager, never with anything
the agent sent. SCRAM-SHA-256 uses scramp, with channel binding (SCRAM-SHA-256-PLUS,
tls-server-end-point) whenever the connection is TLS and the server offers it; AuthenticationOk is
accepted only after the server's own SCRAM proof (its signature in SASLFinal) has been verified, so a
server that does not know the password cannot pass for the target by skipping it. md5 and cleartext
are supported for older servers, but not with tls disable/prefer (where nothing authenticates the server)
unless the target opts in (``allow_insecure_password``); cleartext never goes over an unencrypted
connection except to a loopback address. What the backend says after
AuthenticationOk (ParameterStatus, BackendKeyData, NegotiateProtocolVersion, notices) is collected so
the session can replay it to the agent under the proxy's own cancel key.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

import scramp

from shared.controlplane import BackendRef, BackendTLS
from shared.pg.wire import messages as m
from shared.pg.wire.constants import (
    AUTH_CLEARTEXT,
    AUTH_MD5,
    AUTH_OK,
    AUTH_SASL,
    AUTH_SASL_CONTINUE,
    AUTH_SASL_FINAL,
    PROTOCOL_3_0,
)
from shared.pg.wire.errors import ProtocolViolation
from shared.pg.wire.framing import Framer

from ..credentials import BackendCredential
from .wire import MessageReader, PeerClosed

log = logging.getLogger(__name__)

class BackendError(Exception):
    """The backend could not be reached or refused us. ``error`` is an ErrorResponse for the agent;
    ``server_fields`` the backend's own ErrorResponse fields when it refused (for operators' tools)."""

    def __init__(self, message: str, error: bytes, server_fields: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.server_fields = dict(server_fields or {})


@dataclass(slots=True)
class BackendConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    messages: MessageReader
    pid: int = 0
    key: bytes = b""
    protocol: int = PROTOCOL_3_0
    ready_status: bytes = b"I"
    tls: bool = False
    # How we proved ourselves to the backend: "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "md5", "password", "trust".
    auth_mechanism: str = "trust"
    # Whole messages to replay to the agent after our AuthenticationOk, in order.
    greeting: list[bytes] = field(default_factory=list)


def tls_context(ref: BackendRef) -> ssl.SSLContext:
    if ref.tls in (BackendTLS.VERIFY_CA, BackendTLS.VERIFY_FULL):
        ctx = ssl.create_default_context(cadata=ref.tls_ca_pem) if ref.tls_ca_pem else ssl.create_default_context()
        ctx.check_hostname = ref.tls == BackendTLS.VERIFY_FULL
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        # libpq's "prefer"/"require": encrypted, not authenticated.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


async def open_backend_stream(
    ref: BackendRef, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
    """TCP connect and, per ``ref.tls``, SSLRequest + TLS handshake. Returns (reader, writer, tls)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ref.host, ref.port), timeout)
    except (OSError, TimeoutError) as e:
        raise BackendError(
            f"cannot connect to {ref.host}:{ref.port}: {e}",
            m.build_error("FATAL", "08006", "Airlock could not connect to the target database"),
        ) from e
    if ref.tls == BackendTLS.DISABLE:
        return reader, writer, False
    try:
        writer.write(m.build_ssl_request())
        answer = await asyncio.wait_for(reader.readexactly(1), timeout)
        if answer == b"S":
            await asyncio.wait_for(
                writer.start_tls(tls_context(ref), server_hostname=ref.host), timeout
            )
            return reader, writer, True
        if answer != b"N":
            raise ProtocolViolation("invalid answer to SSLRequest from backend")
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError, ProtocolViolation) as e:
        writer.close()
        raise BackendError(
            f"TLS negotiation with {ref.host}:{ref.port} failed: {e}",
            m.build_error("FATAL", "08006", "Airlock could not establish TLS to the target database"),
        ) from e
    if ref.tls == BackendTLS.PREFER:
        return reader, writer, False
    writer.close()
    raise BackendError(
        f"{ref.host}:{ref.port} does not support TLS but tls={ref.tls}",
        m.build_error("FATAL", "08006", "the target database does not support TLS, which the policy requires"),
    )


async def connect_backend(
    ref: BackendRef,
    credential: BackendCredential,
    parameters: Mapping[str, str],
    protocol: int,
    *,
    timeout: float,
    max_message: int,
) -> BackendConnection:
    """Log in to the target as Airlock's credential. ``parameters`` go into the StartupMessage as they
    are: the agent's settings once the session has judged them (shared/pg/startup.py) and its protocol
    options (``_pq_.*``); ``user`` and ``database`` are always the proxy's own."""
    reader, writer, tls = await open_backend_stream(ref, timeout)
    conn = BackendConnection(
        reader, writer, MessageReader(reader, Framer(limit=max_message, peer="backend")), tls=tls
    )
    params = {k: v for k, v in parameters.items() if k.lower() not in ("user", "database", "options", "replication")}
    params["user"] = credential.username
    params["database"] = ref.database
    try:
        writer.write(m.build_startup_message(protocol, params))
        await asyncio.wait_for(_authenticate(conn, ref, credential), timeout)
        await asyncio.wait_for(_collect_greeting(conn, protocol), timeout)
    except BaseException:
        writer.close()
        raise
    return conn


async def _authenticate(conn: BackendConnection, ref: BackendRef, credential: BackendCredential) -> None:
    scram: scramp.ScramClient | None = None
    server_proved = False  # SCRAM: the server's signature in SASLFinal was verified
    while True:
        mtype, body, whole = await _read(conn)
        if mtype == ord("E"):
            raise _startup_error(body, whole)
        if mtype == ord("v"):
            conn.greeting.append(whole)  # NegotiateProtocolVersion may precede authentication
            continue
        if mtype != ord("R"):
            raise _violation(f"unexpected message {chr(mtype)!r} during backend authentication")
        code, data = m.parse_authentication(body)
        if code == AUTH_OK:
            if scram is not None and not server_proved:
                raise _impostor("it sent AuthenticationOk without its SCRAM proof (no server signature)")
            return
        if code in (AUTH_CLEARTEXT, AUTH_MD5):
            _check_password_request(conn, ref, "cleartext" if code == AUTH_CLEARTEXT else "md5")
        if code == AUTH_CLEARTEXT:
            conn.writer.write(m.build_password_message(credential.password))
            conn.auth_mechanism = "password"
        elif code == AUTH_MD5:
            inner = hashlib.md5((credential.password + credential.username).encode()).hexdigest()
            outer = hashlib.md5(inner.encode() + data[:4]).hexdigest()
            conn.writer.write(m.build_password_message("md5" + outer))
            conn.auth_mechanism = "md5"
        elif code == AUTH_SASL:
            scram = _scram_client(conn, m.parse_sasl_mechanisms(data), credential)
            first = scram.get_client_first().encode()
            conn.writer.write(m.build_sasl_initial_response(scram.mechanism_name, first))
            conn.auth_mechanism = scram.mechanism_name
        elif code == AUTH_SASL_CONTINUE and scram is not None:
            try:
                scram.set_server_first(data.decode())
                conn.writer.write(m.build_sasl_response(scram.get_client_final().encode()))
            except scramp.ScramException as e:
                raise _violation(f"SCRAM exchange failed: {e}") from e
        elif code == AUTH_SASL_FINAL and scram is not None:
            try:
                scram.set_server_final(data.decode())
            except (scramp.ScramException, UnicodeDecodeError) as e:
                # The server could not prove it knows the password: it is not who we think.
                raise _impostor(f"its SCRAM server signature is wrong ({e})") from e
            server_proved = True
        else:
            raise _violation(f"unsupported backend authentication method {code}")


def _check_password_request(conn: BackendConnection, ref: BackendRef, kind: str) -> None:
    """md5 or cleartext: the password (or a hash anyone can replay to this server) goes to whoever answers."""
    if ref.tls in (BackendTLS.DISABLE, BackendTLS.PREFER) and not ref.allow_insecure_password:
        raise BackendError(
            f"backend {ref.host}:{ref.port} asked for {kind} password authentication, and with tls={ref.tls} "
            "the server is not authenticated; refusing to send the password (allow_insecure_password is not set)",
            m.build_error(
                "FATAL", "08006",
                f"Airlock will not send the target's password to a server it has not authenticated: the target "
                f"asked for {kind} password authentication over tls {ref.tls}",
                hint="an operator must set the target's tls to verify-full (or, knowingly, allow_insecure_password)",
            ),
        )  # fmt: skip
    if kind == "cleartext" and not conn.tls and not _is_loopback(ref.host):
        raise _violation("backend asked for a cleartext password over an unencrypted connection")


def _scram_client(
    conn: BackendConnection, mechanisms: list[str], credential: BackendCredential
) -> scramp.ScramClient:
    supported = [name for name in mechanisms if name in ("SCRAM-SHA-256", "SCRAM-SHA-256-PLUS")]
    if not supported:
        raise _violation(f"no supported SASL mechanism among {mechanisms}")
    ssl_object = conn.writer.get_extra_info("ssl_object")
    # Over TLS always pass the binding: with PLUS offered scramp binds the channel; without it scramp
    # sends the "y" GS2 flag so a server that stripped PLUS from the list (a downgrade) is detected.
    binding = ("tls-server-end-point", ssl_object) if ssl_object is not None else None
    try:
        return scramp.ScramClient(supported, credential.username, credential.password, channel_binding=binding)
    except scramp.ScramException as e:
        raise _violation(f"cannot start SCRAM: {e}") from e


async def _collect_greeting(conn: BackendConnection, protocol: int) -> None:
    conn.protocol = protocol
    while True:
        mtype, body, whole = await _read(conn)
        if mtype == ord("Z"):
            conn.ready_status = body[:1] or b"I"
            return
        if mtype == ord("K"):
            conn.pid, conn.key = m.parse_backend_key_data(body)
        elif mtype == ord("E"):
            raise _startup_error(body, whole)
        elif mtype == ord("v"):
            minor, _ = m.parse_negotiate_protocol_version(body)
            conn.protocol = (3 << 16) | minor
            conn.greeting.append(whole)
        elif mtype in (ord("S"), ord("N")):
            conn.greeting.append(whole)
        else:
            raise _violation(f"unexpected message {chr(mtype)!r} during backend start-up")


async def _read(conn: BackendConnection) -> tuple[int, bytes, bytes]:
    try:
        return await conn.messages.read_message()
    except PeerClosed as e:
        raise BackendError(
            "backend closed the connection during start-up",
            m.build_error("FATAL", "08006", "the target database closed the connection during start-up"),
        ) from e
    except ProtocolViolation as e:
        raise _violation(str(e)) from e


def _startup_error(body: bytes, whole: bytes) -> BackendError:
    fields = m.parse_error_fields(body)
    code = fields.get("C", "")
    message = fields.get("M", "")
    if code.startswith("28"):
        # Do not leak the backend account name; the operator sees the details in the proxy log.
        return BackendError(
            f"backend refused Airlock's credential: {code} {message}",
            m.build_error("FATAL", "08006", "Airlock could not authenticate to the target database",
                          hint="the target's credential in Secrets Manager may be wrong or rotated"),
            fields,
        )
    return BackendError(f"backend start-up error: {code} {message}", whole, fields)


def _impostor(why: str) -> BackendError:
    """The server did not prove it knows Airlock's credential: whoever it is, it is not the target."""
    return BackendError(
        f"backend did not prove its identity: {why}",
        m.build_error("FATAL", "08006", "Airlock could not verify the target database's identity (SCRAM)",
                      hint="the connection to the target may be intercepted; an operator must look"),
    )


def _violation(message: str) -> BackendError:
    return BackendError(message, m.build_error("FATAL", "08P01", "protocol error from the target database"))


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"

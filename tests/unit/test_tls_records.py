"""Records toward agents carry at most PostgreSQL's 8 KiB of plaintext, whatever size the writes are."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.pg.tls import PG_RECORD_PLAINTEXT, PgRecordSSLObject
from tests.tls_records import TLS13_OVERHEAD, RecordParser

CA = trustme.CA()
CERT = CA.issue_cert("localhost")


def server_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.sslobject_class = PgRecordSSLObject
    CERT.configure_cert(ctx)
    return ctx


@dataclass
class Link:
    """A server and a client SSL object joined by memory BIOs."""

    server: ssl.SSLObject
    client: ssl.SSLObject
    to_client: ssl.MemoryBIO  # what the server sent
    to_server: ssl.MemoryBIO  # what the client sent
    server_in: ssl.MemoryBIO
    client_in: ssl.MemoryBIO

    def handshake(self) -> None:
        for _ in range(10):
            done = 0
            for obj in (self.client, self.server):
                try:
                    obj.do_handshake()
                    done += 1
                except ssl.SSLWantReadError:
                    pass
            self.server_in.write(self.to_server.read())
            self.client_in.write(self.to_client.read())
            if done == 2:
                self.to_client.read()  # TLS 1.3 session tickets
                return
        raise AssertionError("handshake did not finish")


def link() -> Link:
    server_in, to_client, client_in, to_server = (ssl.MemoryBIO() for _ in range(4))
    server = server_context().wrap_bio(server_in, to_client, server_side=True)
    client_ctx = ssl.create_default_context()
    CA.configure_trust(client_ctx)
    client = client_ctx.wrap_bio(client_in, to_server, server_hostname="localhost")
    return Link(server, client, to_client, to_server, server_in, client_in)


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=70_000), min_size=1, max_size=6))
def test_every_record_fits_8k_and_the_plaintext_arrives_whole(sizes: list[int]) -> None:
    tls = link()
    tls.handshake()
    parser = RecordParser()
    sent = b""
    for n, size in enumerate(sizes):
        data = bytes([n % 251]) * size
        assert tls.server.write(data) == size
        sent += data
    wire = tls.to_client.read()
    parser.feed(wire)
    assert max(parser.application_data()) <= PG_RECORD_PLAINTEXT + TLS13_OVERHEAD
    tls.client_in.write(wire)
    received = b""
    while len(received) < len(sent):
        received += tls.client.read(1 << 20)
    assert received == sent


def test_a_large_write_is_cut_at_8k_exactly() -> None:
    tls = link()
    tls.handshake()
    parser = RecordParser()
    tls.server.write(memoryview(b"x" * (3 * PG_RECORD_PLAINTEXT + 100)))
    parser.feed(tls.to_client.read())
    assert parser.application_data() == [PG_RECORD_PLAINTEXT + TLS13_OVERHEAD] * 3 + [100 + TLS13_OVERHEAD]


def test_a_write_before_the_handshake_says_so_as_ssl_does() -> None:
    with pytest.raises(ssl.SSLWantReadError):
        link().server.write(b"x" * (2 * PG_RECORD_PLAINTEXT))

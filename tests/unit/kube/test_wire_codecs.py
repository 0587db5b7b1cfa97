"""SPDY/3.1 framing, protobuf request bodies and the store's watch history (sans-I/O)."""

from __future__ import annotations

import zlib

import pytest

from airlock.devstack.kube.kinds import CONFIGMAPS
from airlock.devstack.kube.status import ApiError
from airlock.devstack.kube.store import Store
from shared.k8s.protobuf import ProtobufError, decode_object
from shared.k8s.spdy import DICTIONARY, Data, Ping, SpdyConnection, SpdyProtocolError, SynStream

# `kubectl create secret generic s2 --from-literal=a=b` (kubectl v1.36.3) sent exactly these bytes.
KUBECTL_SECRET = bytes.fromhex(
    "6b3873000a0c0a0276311206536563726574121e0a120a02733212001a0022002a00320038004200120"
    "60a01611201621a001a002200"
)


def test_spdy_frames_round_trip_whole_and_byte_by_byte() -> None:
    client, server = SpdyConnection(), SpdyConnection()
    wire = client.syn_stream_frame(1, {"streamtype": ["stdin"]}) + client.data_frame(1, b"hello", fin=True)
    wire += client.ping_frame(7)
    whole = server.receive_data(wire)
    assert whole == [SynStream(1, 0, 0, {"streamtype": ["stdin"]}, False, False), Data(1, b"hello", True), Ping(7)]
    client2, server2 = SpdyConnection(), SpdyConnection()
    wire2 = client2.syn_stream_frame(1, {"streamtype": ["stdin"]}) + client2.data_frame(1, b"hello", fin=True)
    frames = [f for byte in wire2 for f in server2.receive_data(bytes([byte]))]
    assert frames == whole[:2]


def test_spdy_header_blocks_use_the_spdy3_dictionary() -> None:
    assert len(DICTIONARY) == 1423
    block = SpdyConnection()._compress({"streamtype": ["error"]})
    # The zlib header announces a preset dictionary with DICTID = adler32(dictionary).
    assert block[1] & 0x20 and block[2:6] == zlib.adler32(DICTIONARY).to_bytes(4, "big")


def test_spdy_rejects_other_versions() -> None:
    with pytest.raises(SpdyProtocolError):
        SpdyConnection().receive_data(bytes.fromhex("8002000100000000"))


def test_protobuf_body_from_kubectl() -> None:
    assert decode_object(KUBECTL_SECRET) == {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s2"},
                                             "data": {"a": "Yg=="}}


def test_protobuf_refuses_unknown_fields_and_types() -> None:
    secret_with_field_99 = bytes.fromhex("6b3873000a0c0a0276311206536563726574120398" "0601")
    with pytest.raises(ProtobufError, match=r"field 99 of core\.Secret"):
        decode_object(secret_with_field_99)
    unknown_type = bytes.fromhex("6b3873000a0e0a02763112084e6f64654c697374")
    with pytest.raises(ProtobufError, match="NodeList"):
        decode_object(unknown_type)


def test_watch_history_expires() -> None:
    store = Store(history_limit=3)
    for i in range(5):
        store.create(CONFIGMAPS, {"metadata": {"name": f"c{i}", "namespace": "d"}})
    assert [c.object["metadata"]["name"] for c in store.changes_since(CONFIGMAPS, 4)] == ["c3", "c4"]
    with pytest.raises(ApiError) as raised:
        store.changes_since(CONFIGMAPS, 1)
    assert raised.value.code == 410 and raised.value.reason == "Expired"

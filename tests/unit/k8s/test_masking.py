"""Masking what the API answers (Secrets, ConfigMaps, every shape), Accept rewriting, watch framing, and the
exec stream relays (WebSocket channels, SPDY frames) as playbooks."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from shared.k8s.negotiation import is_watch, maskable_accept
from shared.k8s.objects import LAST_APPLIED, REDACTED_B64, ObjectMasker
from shared.k8s.spdy import Data, GoAway, SpdyConnection, SynReply
from shared.k8s.streams import ChannelMaskers, Recorded, SpdyChannels, WebSocketChannels
from shared.k8s.watch import WatchFramer, WatchStreamError
from shared.masking.rules import MaskingPolicy
from shared.masking.stream import StreamMasker
from shared.masking.text import TextMasker

CARD = "4111 1111 1111 1111"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(name: str, **data: str) -> dict[str, Any]:
    applied = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
               "data": {k: b64(v) for k, v in data.items()}, "stringData": {"extra": "s3cr3t"}}  # fmt: skip
    return {"metadata": {"name": name, "annotations": {LAST_APPLIED: json.dumps(applied)}},
            "data": {k: b64(v) for k, v in data.items()}, "type": "Opaque"}  # fmt: skip


def masker(*, secrets: bool = True) -> ObjectMasker:
    return ObjectMasker(TextMasker(MaskingPolicy()), secrets=secrets)


def dumped(value: Any) -> str:
    return json.dumps(value)


def test_secret_values_are_redacted_in_every_shape() -> None:
    shapes: list[tuple[Any, str]] = [
        ({"kind": "Secret", **secret("a", password="hunter2")}, ""),
        ({"kind": "SecretList", "items": [secret("a", password="hunter2")]}, ""),
        ({"kind": "List", "items": [{"kind": "Secret", **secret("a", password="hunter2")}]}, ""),
        ({"items": [secret("a", password="hunter2")]}, "Secret"),  # kind-less: the request says what they are
        ({"type": "ADDED", "object": {"kind": "Secret", **secret("a", password="hunter2")}}, "Secret"),
        ({"kind": "PartialObjectMetadataList",
          "items": [{"kind": "PartialObjectMetadata", **secret("a", p="hunter2")}]}, "Secret"),
    ]  # fmt: skip
    for shape, hint in shapes:
        m = masker()
        m.mask(shape, hint)
        text = dumped(shape)
        assert "hunter2" not in text and b64("hunter2") not in text and "s3cr3t" not in text, shape
        assert m.take_counts()["secret"] >= 1


def test_masked_secret_values_still_decode() -> None:
    value = {"kind": "Secret", **secret("a", password="hunter2")}
    masker().mask(value)
    assert value["data"] == {"password": REDACTED_B64}
    assert base64.b64decode(value["data"]["password"]) == b"****"
    applied = json.loads(value["metadata"]["annotations"][LAST_APPLIED])
    assert applied["data"] == {"password": REDACTED_B64} and applied["stringData"] == {"extra": "****"}


def test_a_table_of_secrets_keeps_only_the_standard_columns() -> None:
    columns = [{"name": n} for n in ("Name", "Type", "Data", "Age", "Password")]
    first = {"kind": "Table", "columnDefinitions": columns,
             "rows": [{"cells": ["a", "Opaque", 1, "1d", "hunter2"],
                       "object": {"kind": "PartialObjectMetadata", **secret("a", p="hunter2")}}]}  # fmt: skip
    later = {"kind": "Table", "rows": [{"cells": ["b", "Opaque", 1, "0s", "hunter3"]}]}
    m = masker()
    m.mask({"type": "ADDED", "object": first}, "Secret")
    m.mask({"type": "ADDED", "object": later}, "Secret")  # a watch sends the columns with its first event only
    assert first["rows"][0]["cells"] == ["a", "Opaque", 1, "1d", "****"]
    assert later["rows"][0]["cells"] == ["b", "Opaque", 1, "0s", "****"]
    assert "hunter2" not in dumped(first)


def test_configmap_values_go_through_the_detectors() -> None:
    value = {"kind": "ConfigMap", "metadata": {"name": "c"},
             "data": {"billing": f"card={CARD}\n", "region": "eu-west-1"},
             "binaryData": {"blob": b64(f"card={CARD}"), "raw": base64.b64encode(b"\xff\x00").decode()}}  # fmt: skip
    m = masker()
    m.mask(value)
    assert value["data"] == {"billing": "card=**** **** **** 1111\n", "region": "eu-west-1"}
    assert base64.b64decode(value["binaryData"]["blob"]) == b"card=**** **** **** 1111"
    assert m.take_counts() == {"card": 2}
    off = ObjectMasker(None)
    untouched = {"kind": "ConfigMap", "data": {"billing": CARD}}
    off.mask(untouched)
    assert untouched["data"] == {"billing": CARD}


def test_revealed_secrets_are_still_redacted_for_the_recording() -> None:
    m = masker(secrets=False)
    shown = {"kind": "Secret", **secret("a", password="hunter2")}
    m.mask(shown)
    assert shown["data"]["password"] == b64("hunter2")
    stored = m.redact_for_recording(copy.deepcopy(shown))
    assert stored["data"]["password"] == REDACTED_B64
    assert m.take_counts() == {}  # the recording's redaction is not what the agent was shown


def test_recorded_objects_lose_tokens_and_detected_values() -> None:
    token_request = {"kind": "TokenRequest", "status": {"token": "eyJhbGciOiJ..."}}
    assert masker().redact_for_recording(token_request)["status"]["token"] == "[redacted]"
    pod = {"kind": "Pod", "spec": {"containers": [{"env": [{"name": "K", "value": "AKIAIOSFODNN7EXAMPLE"}]}]}}
    stored = masker().redact_for_recording(pod)
    assert stored["spec"]["containers"][0]["env"][0]["value"] == "****"


@pytest.mark.parametrize(("accept", "expected"), [
    (None, "application/json"),
    ("application/vnd.kubernetes.protobuf, */*", "application/json"),
    ("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json",
     "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"),
    ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
     "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"),
    ("application/cbor", "application/json"),
    ("application/yaml", "application/json"),
])  # fmt: skip
def test_accept_asks_only_for_json(accept: str | None, expected: str) -> None:
    assert maskable_accept(accept) == expected
    assert "protobuf" not in maskable_accept(accept) and "cbor" not in maskable_accept(accept)


def test_watch_content_type() -> None:
    assert is_watch("application/json;stream=watch")
    assert not is_watch("application/json")


def test_watch_events_whole_byte_by_byte_and_pretty() -> None:
    stream = b'{"type":"ADDED","object":{"a":"\xc3\xa9"}}\n{"type":"DELETED","object":{}}\n'
    assert [e["type"] for e in WatchFramer().feed(stream)] == ["ADDED", "DELETED"]
    framer = WatchFramer()
    events = [e for byte in stream for e in framer.feed(bytes([byte]))]
    assert events == WatchFramer().feed(stream)
    pretty = b'{\n  "type": "ADDED",\n  "object": {}\n}\n'
    assert WatchFramer().feed(pretty) == [{"type": "ADDED", "object": {}}]
    last = WatchFramer()
    assert last.feed(b'{"type":"ADDED","object":{}}') == []
    assert last.finish() == [{"type": "ADDED", "object": {}}]


def test_a_stream_that_is_not_json_or_too_large_is_an_error() -> None:
    with pytest.raises(WatchStreamError):
        WatchFramer().feed(b"not json\n")
    with pytest.raises(WatchStreamError):
        WatchFramer(limit=100).feed(b'{"type":"' + b"x" * 200)
    # A repeated key is read as Python reads it (the last one): the agent gets only what was masked.
    assert WatchFramer().feed(b'{"type":"A","type":"B"}\n') == [{"type": "B"}]


# ---------------------------------------------------------------------- exec streams, as playbooks


def channel_maskers() -> ChannelMaskers:
    text = TextMasker(MaskingPolicy())
    return ChannelMaskers(lambda: StreamMasker(text))


def test_websocket_channels() -> None:
    ws = WebSocketChannels(channel_maskers())
    typed = ws.from_agent(b"\x00password: 4111 1111 1111 1111\r")
    assert typed == [Recorded(True, 0, b"password: **** **** **** 1111\r")]
    # stdout: a card split across two messages never reaches the agent whole
    assert ws.from_cluster(b"\x01card 4111 1111") == ([], [])
    sent, records = ws.from_cluster(b"\x01 1111 1111\n")
    assert sent == [b"\x01card **** **** **** 1111\n"]
    assert records == [Recorded(False, 1, b"card **** **** **** 1111\n")]
    # what is held back goes out before the error channel
    assert ws.from_cluster(b"\x02oops\n$ ") == ([b"\x02oops\n$"], [Recorded(False, 2, b"oops\n$")])
    sent, _ = ws.from_cluster(b'\x03{"status":"Success"}')
    assert sent == [b"\x02 ", b'\x03{"status":"Success"}']
    assert ws.from_cluster(b"\x04{}") == ([b"\x04{}"], [Recorded(False, 4, b"{}")])


def test_spdy_frames_pass_unchanged_but_stdout_is_masked() -> None:
    agent, cluster = SpdyConnection(), SpdyConnection()
    relay = SpdyChannels(channel_maskers())
    opening = b"".join(agent.syn_stream_frame(i, {"streamtype": [t]}) for i, t in ((1, "error"), (3, "stdout")))
    forwarded, records = relay.from_agent(opening)
    assert forwarded == opening and records == []
    reply = cluster.syn_reply_frame(3)
    out, _ = relay.from_cluster(reply + cluster.data_frame(3, b"key AKIAIOSFODNN7EXAMPLE\n"))
    client = SpdyConnection()  # what the agent reads: the cluster's control frame, byte for byte, then masked data
    assert client.receive_data(out) == [SynReply(3, {}, False), Data(3, b"key ****\n", False)]
    split = cluster.data_frame(3, b"4111 1111") + cluster.data_frame(3, b" 1111 1111", fin=True)
    out, records = relay.from_cluster(split)
    assert client.receive_data(out) == [Data(3, b"**** **** **** 1111", True)]
    out, _ = relay.from_cluster(cluster.data_frame(1, b'{"status":"Success"}') + cluster.goaway_frame(3))
    assert client.receive_data(out) == [Data(1, b'{"status":"Success"}', False), GoAway(3, 0)]


def test_spdy_output_held_at_a_pause_is_sent_on_its_stream() -> None:
    agent, cluster = SpdyConnection(), SpdyConnection()
    relay = SpdyChannels(channel_maskers())
    relay.from_agent(agent.syn_stream_frame(5, {"streamtype": ["stdout"]}))
    out, _ = relay.from_cluster(cluster.data_frame(5, b"$ "))
    assert SpdyConnection().receive_data(out) == [Data(5, b"$", False)]
    assert relay.maskers.holding
    flushed, records = relay.flush()
    assert SpdyConnection().receive_data(flushed) == [Data(5, b" ", False)] and records == [Recorded(False, 1, b" ")]


def test_port_forward_streams_are_recorded_as_they_are() -> None:
    agent, cluster = SpdyConnection(), SpdyConnection()
    relay = SpdyChannels(ChannelMaskers(lambda: None), port_forward=True)
    relay.from_agent(agent.syn_stream_frame(1, {"streamtype": ["data"], "port": ["80"]}))
    data = cluster.data_frame(1, b"GET / 4111 1111 1111 1111")
    out, records = relay.from_cluster(data)
    assert out == data and records == [Recorded(False, 255, b"GET / 4111 1111 1111 1111")]

"""The recording's HTTP exchange events, the replay transcript that reads them, the gateway's route and token
parsing, and the kubeconfigs and ExecCredentials ``airlock`` writes."""

from __future__ import annotations

import base64
import json

from airlock.kube_cli import exec_credential, kubeconfig
from airlock.kube_transcript import KubeTranscript, is_kubernetes
from proxy.k8s.gateway import bearer_token, split_route
from shared.k8s import recorded
from shared.masking.rules import MaskingPolicy
from shared.masking.text import TextMasker
from shared.recording.format import Direction, Event, EventKind, encode_decision_payload


def test_payloads_round_trip() -> None:
    head = recorded.request_head("GET", "/api/v1/pods", [("Authorization", "Bearer secret"), ("Accept", "a")])
    assert "Bearer [redacted]" in head and "secret" not in head
    piece = recorded.parse_piece(EventKind.HTTP_HEAD, recorded.head_payload(7, head))
    assert piece.exchange == 7 and recorded.parse_head(piece.data) == (
        "GET /api/v1/pods HTTP/1.1", [("Authorization", "Bearer [redacted]"), ("Accept", "a")])
    stream = recorded.parse_piece(EventKind.STREAM, recorded.stream_payload(3, 1, b"out"))
    assert (stream.exchange, stream.channel, stream.data) == (3, 1, b"out")


def test_query_values_are_masked_for_the_record_and_nothing_else_changes() -> None:
    mask = TextMasker(MaskingPolicy()).mask
    exec_target = "/api/v1/namespaces/d/pods/p/exec?command=echo&command=4111+1111+1111+1111&stdout=true"
    masked = recorded.masked_target(exec_target, mask)
    assert "4111+1111" not in masked and masked.endswith("&stdout=true") and "command=echo&" in masked
    plain = "/api/v1/pods?labelSelector=app%3Dweb&limit=500"
    assert recorded.masked_target(plain, mask) is plain


def test_routes_and_tokens() -> None:
    assert split_route("/targets/prod/identities/deployer/api/v1/pods?watch=1") == \
        ("prod", "deployer", "/api/v1/pods?watch=1")  # fmt: skip
    assert split_route("/targets/prod/identities/deployer") == ("prod", "deployer", "/")
    assert split_route("/api/v1/pods") is None
    assert split_route("/targets/prod/identities/a%2Fb/api") is None
    assert split_route("/targets//identities/x/api") is None
    assert bearer_token("Bearer abc") == "abc" and bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None and bearer_token(None) is None and bearer_token("Bearer ") is None


def test_kubeconfig_and_exec_credential() -> None:
    config = kubeconfig("deployer", server="https://gw:6443/", target="prod", ca=None, token_command=["airlock", "t"])
    assert config["clusters"][0]["cluster"]["server"] == "https://gw:6443/targets/prod/identities/deployer"
    assert config["users"][0]["user"]["exec"]["apiVersion"] == "client.authentication.k8s.io/v1"
    claims = base64.urlsafe_b64encode(json.dumps({"exp": 2_000_000_000}).encode()).decode().rstrip("=")
    credential = exec_credential(f"eyJhbGciOiJFUzI1NiJ9.{claims}.sig")
    assert credential["kind"] == "ExecCredential"
    assert credential["status"]["expirationTimestamp"] == "2033-05-18T03:32:50Z"  # 30 s before exp
    assert "expirationTimestamp" not in exec_credential("ak_0123456789abcdef_secret")["status"]


def event(seq: int, direction: int, kind: int, payload: bytes | dict[str, object]) -> Event:
    data = encode_decision_payload(payload) if isinstance(payload, dict) else payload
    return Event(seq, 1_000_000_000 * seq, direction, kind, data)


def test_the_transcript_shows_requests_results_and_terminal_output() -> None:
    grant = event(0, Direction.DECISION, EventKind.GRANT, {"identity": "deployer", "backend": {"engine": "kubernetes"}})
    assert is_kubernetes(grant)
    t = KubeTranscript()
    lines = t.feed(grant)
    request = {"exchange": 1, "method": "GET", "target": "/api/v1/namespaces/d/secrets", "verb": "list",
               "resource": "secrets", "namespace": "d", "resource_request": True, "action": "allow", "rule": "default",
               "detail": "full", "kubectl_command": "kubectl get"}  # fmt: skip
    lines += t.feed(event(1, Direction.DECISION, EventKind.REQUEST, request))
    head = recorded.response_head(200, "OK", [("Content-Type", "application/json")])
    lines += t.feed(event(2, Direction.PROXY_TO_AGENT, EventKind.HTTP_HEAD, recorded.head_payload(1, head)))
    body = json.dumps({"kind": "SecretList", "items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]})
    lines += t.feed(event(3, Direction.PROXY_TO_AGENT, EventKind.HTTP_BODY, recorded.body_payload(1, body.encode())))
    lines += t.feed(event(4, Direction.DECISION, EventKind.EXCHANGE_END, {"exchange": 1, "status": 200, "bytes": 9}))
    exec_request = {**request, "exchange": 2, "verb": "get", "judged_as": "create", "resource": "pods",
                    "subresource": "exec", "name": "p", "kubectl_command": "kubectl exec",
                    "target": "/api/v1/namespaces/d/pods/p/exec"}
    lines += t.feed(event(5, Direction.DECISION, EventKind.REQUEST, exec_request))
    switch = recorded.response_head(101, "Switching Protocols", [])
    lines += t.feed(event(6, Direction.PROXY_TO_AGENT, EventKind.HTTP_HEAD, recorded.head_payload(2, switch)))
    lines += t.feed(event(7, Direction.AGENT_TO_PROXY, EventKind.STREAM, recorded.stream_payload(2, 0, b"ls\n")))
    lines += t.feed(event(8, Direction.PROXY_TO_AGENT, EventKind.STREAM, recorded.stream_payload(2, 1, b"a.txt\nb")))
    lines += t.feed(event(9, Direction.PROXY_TO_AGENT, EventKind.STREAM,
                          recorded.stream_payload(2, 3, b'{"status":"Success"}')))  # fmt: skip
    lines += t.feed(event(10, Direction.DECISION, EventKind.EXCHANGE_END, {"exchange": 2, "status": 101, "bytes": 30}))
    text = "\n".join(lines)
    assert 'GRANT identity="deployer"' in text
    assert "→ [1] kubectl get: GET /api/v1/namespaces/d/secrets  (list secrets -n d)" in text
    assert "← [1] 200 OK: SecretList: 2 items (a, b)" in text
    assert "(create pods/exec p -n d)" in text
    assert "[2] ⌨ 'ls\\n'" in text and "  │ a.txt\n" in text + "\n" and "  │ b" in text and "exit: Success" in text
    assert "← [2] stream ended" in text
    assert t.finish() == []

"""kubectl (v1.36 and Debian's v1.20), the Python ``kubernetes`` client and raw HTTPS through Airlock's
Kubernetes API gateway, in front of the local Kubernetes API stand-in: every request judged and recorded,
Secrets masked in every output format, exec recorded and replayed, holds approved, revocation ending a watch.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import ssl
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from airlock.devstack.kube import KubeStandin
from airlock.devstack.kube.seed import AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, TEST_CARD, TEST_CARD_2
from airlock.devstack.kubectl import ensure_helm
from airlock.devstack.stack import free_port, wait_for_port
from airlock.kube_cli import kubeconfig
from tests.integration.kube_clients import Kubectl, kubectl_120, kubectl_136
from tests.integration.stack import AirlockStack, eventually

PAYMENTS_POD = "payments-api-7d4b9c6f5-x2x7q"
SECRET_VALUES = [TEST_CARD, TEST_CARD_2, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "correct-horse-battery-staple"]
# What must never appear in anything the agent is shown: the values, and their base64 as Secrets hold them.
FORBIDDEN = SECRET_VALUES + [base64.b64encode(v.encode()).decode() for v in SECRET_VALUES] + [
    "4111111111111111", "4111+1111+1111+1111", "4111%201111%201111%201111"]


def clean(text: str) -> None:
    found = [v for v in FORBIDDEN if v in text]
    assert not found, f"unmasked {found} in:\n{text[:2000]}"


@pytest.fixture(scope="module")
def standin(stack: AirlockStack) -> KubeStandin:
    info = stack.info["kube_standin"]
    state = Path(info["tokens_file"]).parent
    tokens = {t["role"]: t["token"] for t in json.loads(Path(info["tokens_file"]).read_text())}
    return KubeStandin(state, info["server"], Path(info["ca"]), None, tokens)


def write_config(stack: AirlockStack, identity: str, home: Path, *, server: str | None = None) -> Path:
    gateway = stack.info["kubernetes"]
    config = kubeconfig(identity, server=server or gateway["server"], target=gateway["target"],
                        ca=Path(gateway["ca"]), token=stack.token(identity))  # fmt: skip
    path = home / identity / "config"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kube-homes")


@pytest.fixture(scope="module")
def deployer(stack: AirlockStack, homes: Path) -> Kubectl:
    return Kubectl(kubectl_136(), write_config(stack, "deployer", homes))


@pytest.fixture(scope="module")
def deployer20(deployer: Kubectl) -> Kubectl:
    return Kubectl(kubectl_120(), deployer.kubeconfig)


def as_identity(stack: AirlockStack, homes: Path, identity: str) -> Kubectl:
    return Kubectl(kubectl_136(), write_config(stack, identity, homes))


class Wire:
    """Raw HTTPS to the gateway, for what kubectl does not show (Status bodies, content types)."""

    def __init__(self, stack: AirlockStack, identity: str = "deployer", token: str | None = None) -> None:
        gateway = stack.info["kubernetes"]
        self.base = f"{gateway['server']}/targets/{gateway['target']}/identities/{identity}"
        self.server = gateway["server"]
        self.token = token if token is not None else stack.token(identity)
        self.context = ssl.create_default_context(cafile=gateway["ca"])

    def request(self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
                base: str | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        url = urllib.parse.urlsplit((self.base if base is None else base) + path)
        auth = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        connection = http.client.HTTPSConnection(url.hostname or "", url.port, context=self.context, timeout=20)
        try:  # http.client, not urllib: urllib replaces the Connection header
            connection.request(method, url.path + (f"?{url.query}" if url.query else ""), body=body,
                               headers={**auth, **(headers or {})})  # fmt: skip
            response = connection.getresponse()
            return response.status, dict(response.headers), response.read()
        finally:
            connection.close()

    def json(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        code, _, body = self.request(method, path, **kwargs)
        return code, json.loads(body)


# ---------------------------------------------------------------------- reading, as the agent, impersonated


def test_kubectl_reads_through_the_gateway_impersonating_the_agent(deployer: Kubectl, standin: KubeStandin) -> None:
    pods = deployer.ok("get", "pods", "-A")
    assert PAYMENTS_POD in pods and "checkout-" in pods
    assert "payments-api" in deployer.ok("get", "deployments")
    whoami = deployer.ok("auth", "whoami")
    assert "airlock:deployer" in whoami and "airlock:edit" in whoami
    seen = [e for e in standin.audit_events() if e.get("impersonatedUser", {}).get("username") == "airlock:deployer"]
    assert seen, "the stand-in never saw a request impersonating the agent"
    assert all(e["user"]["username"] == "system:serviceaccount:airlock-system:airlock-gateway" for e in seen)
    assert {"airlock:edit"} <= set(seen[-1]["impersonatedUser"]["groups"])


def test_the_python_client_reads_and_is_refused_like_kubectl(stack: AirlockStack, homes: Path) -> None:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(write_config(stack, "deployer", homes)))
    v1 = client.CoreV1Api(api)
    assert PAYMENTS_POD in [p.metadata.name for p in v1.list_namespaced_pod("default").items]
    secret = v1.read_namespaced_secret("payments-api", "default")
    clean(json.dumps(secret.data))
    assert set(secret.data.values()) == {"KioqKg=="}
    with pytest.raises(client.ApiException) as refused:
        v1.delete_collection_namespaced_config_map("default")
    assert refused.value.status == 403 and "no-bulk-deletes" in refused.value.body


# ---------------------------------------------------------------------- Secrets and other values, masked


@pytest.mark.parametrize("output", [
    [], ["-o", "wide"], ["-o", "json"], ["-o", "yaml"], ["-o", "name"],
    ["-o", "jsonpath={.items[*].data}"], ["-o", "go-template={{range .items}}{{.data}}{{end}}"],
    ["-o", "custom-columns=NAME:.metadata.name,DATA:.data"],
])  # fmt: skip
def test_secrets_are_masked_in_every_output_format(deployer: Kubectl, output: list[str]) -> None:
    shown = deployer.ok("get", "secrets", "-A", *output)
    clean(shown)
    values_shown = any(o in " ".join(output) for o in ("json", "yaml", "jsonpath", "go-template", "custom-columns"))
    if values_shown:
        assert "KioqKg==" in shown  # base64 of "****": still a value clients can decode
    if "jsonpath" not in " ".join(output) and "go-template" not in " ".join(output):
        assert "payments-api" in shown


def test_secrets_are_masked_when_described_applied_and_decoded(deployer: Kubectl, tmp_path: Path) -> None:
    clean(deployer.ok("describe", "secret", "payments-api"))
    clean(deployer.ok("get", "secret", "stripe-keys", "-n", "prod", "-o", "yaml"))
    decoded = deployer.ok("get", "secret", "payments-api", "-o", "jsonpath={.data.card-number}")
    assert base64.b64decode(decoded) == b"****"
    manifest = tmp_path / "secret.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "applied"},
                                        "stringData": {"card": TEST_CARD}}))  # fmt: skip
    deployer.ok("apply", "-f", str(manifest))  # client-side apply: the last-applied annotation holds the value
    shown = deployer.ok("get", "secret", "applied", "-o", "yaml")
    clean(shown)
    assert "last-applied-configuration" in shown
    deployer.ok("apply", "-f", str(manifest))  # a second apply still works on the masked live object
    deployer.ok("delete", "secret", "applied")


def test_a_client_asking_for_protobuf_gets_masked_json(stack: AirlockStack) -> None:
    wire = Wire(stack)
    for accept in ("application/vnd.kubernetes.protobuf", "application/vnd.kubernetes.protobuf, */*",
                   "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json"):  # fmt: skip
        code, headers, body = wire.request("GET", "/api/v1/namespaces/default/secrets", headers={"Accept": accept})
        assert code == 200 and headers["Content-Type"].startswith("application/json"), (accept, headers)
        clean(body.decode())
    table = json.loads(wire.request("GET", "/api/v1/namespaces/default/secrets", headers={
        "Accept": "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json"})[2])
    assert table["kind"] == "Table"


def test_configmaps_and_logs_go_through_the_detectors(deployer: Kubectl, standin: KubeStandin) -> None:
    shown = deployer.ok("get", "configmap", "payments-config", "-o", "yaml")
    clean(shown)
    assert "test.card=************4444" in shown and "eu-west-1" in shown
    logs = deployer.ok("logs", PAYMENTS_POD)
    clean(logs)
    assert "charge accepted for card **** **** **** 1111" in logs
    follow = deployer.popen("logs", "-f", PAYMENTS_POD)
    try:
        time.sleep(1.0)
        standin.append_log("default", PAYMENTS_POD, "payments-api", f"late charge on {TEST_CARD_2} ok")
        lines: list[str] = []
        assert follow.stdout is not None
        while not any("late charge" in line for line in lines):
            lines.append(follow.stdout.readline())
        clean("".join(lines))
        assert "late charge on ************4444 ok\n" in lines
    finally:
        follow.kill()
        follow.wait()


# ---------------------------------------------------------------------- judged: allowed, refused, held


def test_apply_and_delete_allowed_and_refused(deployer: Kubectl, stack: AirlockStack, homes: Path,
                                              tmp_path: Path) -> None:  # fmt: skip
    web = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "gw-web"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "gw-web"}},
                    "template": {"metadata": {"labels": {"app": "gw-web"}},
                                 "spec": {"containers": [{"name": "web", "image": "web:2"}]}}}}  # fmt: skip
    manifest = tmp_path / "web.yaml"
    manifest.write_text(yaml.safe_dump(web))
    assert "created" in deployer.ok("apply", "-f", str(manifest))
    assert "serverside-applied" in deployer.ok("apply", "--server-side", "-f", str(manifest))
    web["spec"]["template"]["spec"]["volumes"] = [{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}]
    manifest.write_text(yaml.safe_dump(web))
    refused = deployer.run("apply", "-f", str(manifest))
    assert refused.returncode != 0
    assert 'Error from server (Forbidden)' in refused.stderr and 'rule "no-host-access"' in refused.stderr
    assert "hostPath volume (spec.template.spec.volumes[0].hostPath)" in refused.stderr
    patched = deployer.run("patch", "deployment", "gw-web", "--type=json",
                           "-p", '[{"op":"add","path":"/spec/template/spec/hostNetwork","value":true}]')  # fmt: skip
    assert patched.returncode != 0 and "hostNetwork" in patched.stderr
    assert "deleted" in deployer.ok("delete", "deployment", "gw-web")
    namespace = deployer.run("delete", "namespace", "prod")
    assert namespace.returncode != 0 and 'rule "no-namespace-deletes"' in namespace.stderr
    analyst = as_identity(stack, homes, "analyst")
    assert PAYMENTS_POD in analyst.ok("get", "pods")
    read_only = analyst.run("delete", "configmap", "payments-config")
    assert read_only.returncode != 0 and 'rule "read_only"' in read_only.stderr
    contractor = as_identity(stack, homes, "contractor")
    assert PAYMENTS_POD in contractor.ok("get", "pods", "-n", "default")
    outside = contractor.run("get", "pods", "-n", "prod")
    assert outside.returncode != 0 and "may use only the namespaces default" in outside.stderr


def test_a_privileged_pod_is_refused(deployer: Kubectl) -> None:
    refused = deployer.run("run", "root-shell", "--image=registry.local/x", "--privileged")
    assert refused.returncode != 0
    assert ('Airlock denied a privileged container (spec.containers[0].securityContext.privileged) in create pods '
            '"root-shell" in namespace "default"') in refused.stderr  # fmt: skip
    assert "root-shell" not in deployer.ok("get", "pods")


def pending_approval(stack: AirlockStack, identity: str) -> str:
    found: list[str] = []

    def look() -> bool:
        for line in stack.cli("approvals", "list", "--json", "--status", "pending").stdout.splitlines():
            record = json.loads(line)
            if record["identity"] == identity and record["target"] == "demo-k8s":
                found.append(record["approval_id"])
        return bool(found)

    assert eventually(look, timeout=20), "no pending approval appeared"
    return found[0]


def test_a_held_delete_waits_for_its_approval(deployer: Kubectl, stack: AirlockStack) -> None:
    deny = deployer.popen("delete", "deployment", "checkout", "-n", "prod")
    approval_id = pending_approval(stack, "deployer")
    assert deny.poll() is None  # kubectl waits: its request is open in the gateway
    stack.cli("approvals", "deny", approval_id, "--reason", "not during the sale", "--as", "U0DEMODANA")
    output = deny.communicate(timeout=20)[0]
    assert deny.returncode != 0 and f"approval {approval_id} was denied by U0DEMODANA" in output
    assert "not during the sale" in output
    assert "checkout" in deployer.ok("get", "deployments", "-n", "prod")

    gone = deployer.popen("delete", "deployment", "checkout", "-n", "prod")
    approval_id = pending_approval(stack, "deployer")
    gone.kill()  # Ctrl-C while waiting: the approval is withdrawn
    gone.wait()

    def withdrawn() -> bool:
        listed = stack.cli("approvals", "list", "--json", "--status", "withdrawn").stdout
        return approval_id in listed

    assert eventually(withdrawn, timeout=20)

    approve = deployer.popen("delete", "deployment", "checkout", "-n", "prod")
    approval_id = pending_approval(stack, "deployer")
    stack.cli("dev", "approvals", "click", approval_id, "approve")
    output = approve.communicate(timeout=20)[0]
    assert approve.returncode == 0, output
    assert f"Warning: Airlock: approval {approval_id} was approved by dana (slack)" in output
    assert 'deployment.apps "checkout" deleted' in output


# ---------------------------------------------------------------------- bad input


def test_bad_requests_get_clear_statuses(stack: AirlockStack) -> None:
    wire = Wire(stack)
    code, body = wire.json("GET", "/api/v1/namespaces", base=wire.server)
    assert (code, body["reason"]) == (404, "NotFound") and "airlock kubeconfig" in body["message"]
    code, body = Wire(stack, token="").json("GET", "/api/v1/namespaces")
    assert code == 401 and "bearer token" in body["message"]
    code, body = Wire(stack, token="not-a-token").json("GET", "/api/v1/namespaces")
    assert code == 401 and "neither an Airlock key (ak_...) nor a well-formed JWT" in body["message"]
    code, body = Wire(stack, "analyst", token=stack.token("deployer")).json("GET", "/api/v1/namespaces")
    assert code == 401 and "proves identity 'deployer'" in body["message"]
    code, body = wire.json("GET", "/api/v1/namespaces/default/pods/%2e%2e/secrets")
    assert code == 403 and "'..' segments" in body["message"]
    assert body["details"]["causes"][0]["message"] == "rule unknown"
    code, body = wire.json("POST", "/api/v1/namespaces/default/configmaps", body=b"\xa1\x01",
                           headers={"Content-Type": "application/cbor"})  # fmt: skip
    assert code == 403 and "media type 'application/cbor'" in body["message"]
    code, body = wire.json("POST", "/api/v1/namespaces/default/configmaps",
                           body=b'{"metadata": {"name": "x"}, "metadata": {"name": "y"}}',
                           headers={"Content-Type": "application/json"})  # fmt: skip
    assert code == 403 and "appears twice" in body["message"]
    code, body = wire.json("GET", "/api/v1/namespaces/default/secrets?watch=1",
                           headers={"Connection": "Upgrade", "Upgrade": "websocket"})  # fmt: skip
    assert code == 400 and "only for pods/exec" in body["message"]
    review = b'{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}'
    code, body = wire.json("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=review, headers={
        "Content-Type": "application/json", "Impersonate-User": "kubernetes-admin",
        "Impersonate-Group": "system:masters"})  # the agent's own impersonation is dropped, never honoured
    assert code == 201 and body["status"]["userInfo"]["username"] == "airlock:deployer"
    assert "system:masters" not in body["status"]["userInfo"]["groups"]


# ---------------------------------------------------------------------- streams: exec, recorded and replayed


@pytest.fixture(scope="module")
def short_sessions(stack: AirlockStack) -> Iterator[str]:
    """A second proxy whose Kubernetes sessions end after 1 s of quiet, so their recordings are sealed."""
    port = free_port()
    with stack.extra_proxy(k8s_port=str(port), k8s_idle_seconds="1"):
        wait_for_port("127.0.0.1", port, None, timeout=20)
        yield f"https://127.0.0.1:{port}"


def latest_session(stack: AirlockStack, identity: str, status: str = "closed") -> str:
    sessions: list[dict[str, Any]] = []

    def look() -> bool:
        listed = stack.cli("sessions", "list", "--identity", identity, "--target", stack.info["kubernetes"]["target"],
                           "--status", status, "--json").stdout  # fmt: skip
        sessions[:] = [json.loads(line) for line in listed.splitlines()]
        return bool(sessions)

    assert eventually(look, timeout=30), f"no {status} session of {identity}"
    return str(sessions[0]["session_id"])


def test_exec_over_websocket_and_spdy_is_masked_recorded_and_replayed(
    stack: AirlockStack, homes: Path, short_sessions: str
) -> None:
    config = write_config(stack, "contractor", homes / "short", server=short_sessions)
    current, old = Kubectl(kubectl_136(), config), Kubectl(kubectl_120(), config)
    script = f"echo card {TEST_CARD}; echo done"
    assert current.ok("exec", PAYMENTS_POD, "--", "sh", "-c", script) == "card **** **** **** 1111\ndone\n"
    spdy = old.run("exec", PAYMENTS_POD, "--", "sh", "-c", script + "; exit 3")
    assert spdy.stdout == "card **** **** **** 1111\ndone\n" and spdy.returncode == 3
    assert current.ok("exec", "-i", PAYMENTS_POD, "--", "cat", stdin="typed 4111111111111111\n") == \
        "typed ************1111\n"  # fmt: skip
    current.ok("create", "secret", "generic", "gw-proto", f"--from-literal=card={TEST_CARD}")  # a protobuf body
    current.ok("delete", "secret", "gw-proto")
    session = latest_session(stack, "contractor")
    replay = stack.cli("replay", session).stdout
    clean(replay)
    assert "→ [" in replay and "kubectl exec: GET /api/v1/namespaces/default/pods/" in replay
    assert "│ card **** **** **** 1111" in replay and "exit: Success" in replay
    assert "exit: command terminated with non-zero exit code: exit status 3" in replay
    assert "⌨ 'typed ************1111\\n'" in replay
    assert "body: Secret gw-proto" in replay  # decoded from protobuf, values masked
    verified = stack.cli("verify", session)
    assert verified.returncode == 0 and "OK" in verified.stdout.upper()
    raw = homes / "raw"
    stack.cli("replay", session, "--raw", str(raw))
    for stream in raw.iterdir():  # every byte recorded, both directions: nothing unmasked
        clean(stream.read_bytes().decode("utf-8", "replace"))


def test_an_exec_plugin_kubeconfig(stack: AirlockStack, homes: Path) -> None:
    path = homes / "plugin" / "config"
    made = stack.cli("dev", "kubeconfig", "deployer", "--output", str(path))
    assert str(path) in made.stdout
    config = yaml.safe_load(path.read_text())
    assert config["users"][0]["user"]["exec"]["args"][-2:] == ["deployer", "--exec-credential"]
    kubectl = Kubectl(kubectl_136(), path)
    env = {**stack.env(), "PATH": os.environ["PATH"]}
    assert "default" in kubectl.ok("get", "namespaces", env=env)
    printed = homes / "printed" / "config"
    printed.parent.mkdir(parents=True)
    printed.write_text(stack.cli("kubeconfig", "analyst", "--static-token").stdout)
    assert "airlock:view" in Kubectl(kubectl_136(), printed).ok("auth", "whoami")


def test_helm_through_the_gateway_with_revealed_secrets(stack: AirlockStack, homes: Path, deployer: Kubectl,
                                                       tmp_path: Path) -> None:  # fmt: skip
    """Helm keeps its releases in Secrets (protobuf bodies, label selectors, protobuf DeleteOptions): it works
    for a binding that reveals Secrets; everyone else still sees them masked."""
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ .Release.Name }}-cfg'}\n"
        "data: {greeting: '{{ .Values.greeting }}'}\n")
    (chart / "values.yaml").write_text("greeting: hello\n")
    helm = Kubectl(ensure_helm(), write_config(stack, "ci-nightly", homes))
    assert "STATUS: deployed" in helm.ok("install", "gw-greeter", str(chart))
    helm.ok("upgrade", "gw-greeter", str(chart), "--set", "greeting=bonjour")  # reads the release back
    assert deployer.ok("get", "configmap", "gw-greeter-cfg", "-o", "jsonpath={.data.greeting}") == "bonjour"
    release = deployer.ok("get", "secret", "sh.helm.release.v1.gw-greeter.v2", "-o", "jsonpath={.data.release}")
    assert release == "KioqKg=="
    assert helm.ok("uninstall", "gw-greeter").strip() == 'release "gw-greeter" uninstalled'


# ---------------------------------------------------------------------- revocation ends a live watch


def test_revocation_ends_a_live_watch_and_exec(stack: AirlockStack, homes: Path, deployer: Kubectl) -> None:
    contractor = as_identity(stack, homes, "contractor")
    watch = contractor.popen("get", "secrets", "-w", "-o", "json")
    shell = contractor.popen("exec", PAYMENTS_POD, "--", "sleep", "60")
    try:
        time.sleep(1.5)
        deployer.ok("create", "secret", "generic", "gw-watched", f"--from-literal=card={TEST_CARD}")
        stack.cli("identity", "revoke", "contractor", "--reason", "offboarded")
        output = watch.communicate(timeout=30)[0]
        ended = shell.communicate(timeout=30)[0]
    finally:
        for process in (watch, shell):
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
        stack.cli("identity", "reinstate", "contractor")
        deployer.run("delete", "secret", "gw-watched")
    assert shell.returncode != 0 and "Airlock ended this session" in ended and "offboarded" in ended, ended
    clean(output)
    assert '"name": "gw-watched"' in output
    # The watch ended by itself (the grant lasts 5 s here), with the API server's way of ending a watch: an
    # ERROR event carrying a Status, which kubectl prints.
    assert "Airlock ended this session" in output and "offboarded" in output, output

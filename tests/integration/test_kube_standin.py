"""The local Kubernetes API stand-in, driven by real kubectl (v1.36 and Debian's v1.20), the Python
``kubernetes`` client and raw HTTPS. No gateway here: this is the upstream the gateway will sit in front of.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from airlock.devstack.kube import KubeStandin, start_kube_standin
from airlock.devstack.kube.seed import AWS_ACCESS_KEY_ID, TEST_CARD
from airlock.devstack.kubectl import ensure_helm
from tests.integration.kube_clients import Kubectl, KubeWire, kubectl_120, kubectl_136

PAYMENTS_POD = "payments-api-7d4b9c6f5-x2x7q"
WEB_POD = "web-5c7d8b9f4-k8r2m"


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeStandin]:
    running = start_kube_standin(tmp_path_factory.mktemp("kube-standin"), bookmark_interval=0.5)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def configs(standin: KubeStandin, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    home = tmp_path_factory.mktemp("kubeconfigs")
    return {role: standin.kubeconfig(home / role / "config", role) for role in standin.tokens}


@pytest.fixture(scope="module")
def kubectl(configs: dict[str, Path]) -> Kubectl:
    return Kubectl(kubectl_136(), configs["admin"])


@pytest.fixture(scope="module")
def kubectl20(configs: dict[str, Path]) -> Kubectl:
    return Kubectl(kubectl_120(), configs["admin"])


@pytest.fixture(scope="module")
def wire(standin: KubeStandin) -> KubeWire:
    return KubeWire(standin)


# ---------------------------------------------------------------------- discovery


def test_versions_and_resources_are_discovered(kubectl: Kubectl, kubectl20: Kubectl) -> None:
    assert "Server Version: v1.36.0+airlock-standin" in kubectl.ok("version")
    resources = kubectl.ok("api-resources", "--no-headers")
    rows = {line.split()[0]: line.split() for line in resources.splitlines()}
    assert rows["deployments"][1:] == ["deploy", "apps/v1", "true", "Deployment"]
    assert rows["pods"][1:] == ["po", "v1", "true", "Pod"]
    assert rows["namespaces"][1:] == ["ns", "v1", "false", "Namespace"]
    assert "secrets" in kubectl20.ok("api-resources", "--no-headers")


def test_aggregated_discovery_is_negotiated(wire: KubeWire) -> None:
    for version in ("v2", "v2beta1"):
        accept = f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList,application/json"
        response = wire.request("GET", "/apis", headers={"Accept": accept})
        assert response.headers["Content-Type"] == \
            f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
        body = json.loads(response.read())
        assert body["apiVersion"] == f"apidiscovery.k8s.io/{version}"
        [apps] = [group for group in body["items"] if group["metadata"]["name"] == "apps"]
        resources = {r["resource"]: r for r in apps["versions"][0]["resources"]}
        assert resources["deployments"]["scope"] == "Namespaced"
        again = wire.request("GET", "/apis", headers={"Accept": accept, "If-None-Match": response.headers["ETag"]})
        assert again.status == 304
    status, legacy = wire.json("GET", "/api", headers={"Accept": "application/json"})
    assert (status, legacy["kind"], legacy["versions"]) == (200, "APIVersions", ["v1"])
    status, core = wire.json("GET", "/api/v1")
    names = {r["name"]: r for r in core["resources"]}
    assert names["pods/exec"]["verbs"] == ["create", "get"]
    assert names["serviceaccounts/token"]["group"] == "authentication.k8s.io"


def test_explain_reads_openapi_v3_and_v2_protobuf(kubectl: Kubectl, kubectl20: Kubectl) -> None:
    assert "List of environment variables to set in the container." in \
        kubectl.ok("explain", "pods.spec.containers.env")
    assert "Label selector for pods." in kubectl20.ok("explain", "deployment.spec.selector")


# ---------------------------------------------------------------------- reads


def test_get_prints_tables_json_and_yaml(kubectl: Kubectl) -> None:
    table = kubectl.ok("get", "pods").splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert any(line.split()[:4] == [PAYMENTS_POD, "1/1", "Running", "0"] for line in table[1:])
    wide = kubectl.ok("get", "pods", "-A", "-o", "wide").splitlines()
    assert wide[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED",
                               "NODE", "READINESS", "GATES"]
    assert any(line.startswith("prod ") for line in wide)
    listed = json.loads(kubectl.ok("get", "deployments", "-n", "prod", "-o", "json"))
    assert listed["kind"] == "List" and listed["items"][0]["kind"] == "Deployment"
    secret = yaml.safe_load(kubectl.ok("get", "secret", "payments-api", "-o", "yaml"))
    assert base64.b64decode(secret["data"]["card-number"]).decode() == TEST_CARD
    assert kubectl.ok("get", "cm", "payments-config", "-o", "jsonpath={.data.billing\\.properties}").count(
        AWS_ACCESS_KEY_ID) == 1
    labelled = kubectl.ok("get", "pods", "-l", "app in (web)", "-o", "name")
    assert labelled.split() == [f"pod/{WEB_POD}"]
    by_name = kubectl.ok("get", "pods", "--field-selector", f"metadata.name={WEB_POD}", "-o", "name")
    assert by_name.split() == [f"pod/{WEB_POD}"]


def test_errors_print_as_kubectl_prints_the_api_servers_status(kubectl: Kubectl) -> None:
    missing = kubectl.run("get", "pod", "nope")
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'
    invalid = kubectl.run("run", "Bad_Name", "--image=x")
    assert 'The Pod "Bad_Name" is invalid' in invalid.stderr
    assert 'metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain' in invalid.stderr
    selector = kubectl.run("get", "pods", "--field-selector", "spec.bogus=1")
    assert "field label not supported: spec.bogus" in selector.stderr
    protected = kubectl.run("delete", "namespace", "default")
    assert 'namespaces "default" is forbidden: this namespace may not be deleted' in protected.stderr


def test_status_bodies_are_shaped_as_the_api_servers(wire: KubeWire, standin: KubeStandin) -> None:
    status, missing = wire.json("GET", "/apis/apps/v1/namespaces/prod/deployments/nope")
    assert (status, missing) == (404, {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'deployments.apps "nope" not found', "reason": "NotFound",
        "details": {"name": "nope", "group": "apps", "kind": "deployments"}, "code": 404})
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "payments-config"}}).encode()
    status, exists = wire.json("POST", "/api/v1/namespaces/default/configmaps", body=body,
                               headers={"Content-Type": "application/json"})
    assert (status, exists["reason"], exists["details"]) == (409, "AlreadyExists",
                                                             {"name": "payments-config", "kind": "configmaps"})
    bad = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}).encode()
    status, invalid = wire.json("POST", "/api/v1/namespaces/default/pods", body=bad,
                                headers={"Content-Type": "application/json"})
    assert (status, invalid["reason"], invalid["message"]) == (422, "Invalid",
                                                               'Pod "p" is invalid: spec.containers: Required value')
    assert invalid["details"]["causes"] == [{"reason": "FieldValueRequired", "message": "Required value",
                                             "field": "spec.containers"}]
    viewer = KubeWire(standin, "viewer")
    status, refused = viewer.json("GET", "/api/v1/namespaces/prod/secrets/stripe-keys")
    assert (status, refused["reason"], refused["details"]) == (403, "Forbidden",
                                                               {"name": "stripe-keys", "kind": "secrets"})
    anonymous = KubeWire(standin)
    anonymous.token = "wrong"
    status, unauthorized = anonymous.json("GET", "/api/v1/pods")
    assert (status, unauthorized["reason"], unauthorized["message"]) == (401, "Unauthorized", "Unauthorized")


def test_list_pages_with_limit_and_continue(wire: KubeWire) -> None:
    status, first = wire.json("GET", "/api/v1/configmaps?limit=2")
    assert status == 200 and len(first["items"]) == 2 and first["metadata"]["remainingItemCount"] >= 1
    status, rest = wire.json("GET", f"/api/v1/configmaps?limit=100&continue={first['metadata']['continue']}")
    keys = [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in first["items"] + rest["items"]]
    assert len(keys) == len(set(keys)) and ("default", "payments-config") in keys
    assert "continue" not in rest["metadata"]


def test_protobuf_is_negotiated_to_json_and_accepted_in_bodies(wire: KubeWire, kubectl: Kubectl) -> None:
    response = wire.request("GET", "/api/v1/namespaces/default/pods",
                            headers={"Accept": "application/vnd.kubernetes.protobuf,application/json"})
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.read())["kind"] == "PodList"
    refused = wire.request("GET", "/api/v1/namespaces/default/pods",
                           headers={"Accept": "application/vnd.kubernetes.protobuf"})
    assert refused.status == 406 and json.loads(refused.read())["reason"] == "NotAcceptable"
    # kubectl's typed clients send protobuf request bodies.
    kubectl.ok("create", "secret", "generic", "typed-secret", "--from-literal=token=s3cr3t")
    assert kubectl.ok("get", "secret", "typed-secret", "-o", "jsonpath={.data.token}") == "czNjcjN0"
    kubectl.ok("create", "deployment", "typed-deploy", "--image=registry.local/x:1", "--replicas=0")
    assert kubectl.ok("get", "deploy", "typed-deploy", "-o", "jsonpath={.spec.replicas}") == "0"


# ---------------------------------------------------------------------- writes


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: %(name)s, labels: {app: %(name)s}}
spec:
  replicas: %(replicas)d
  selector: {matchLabels: {app: %(name)s}}
  template:
    metadata: {labels: {app: %(name)s}}
    spec:
      securityContext: {runAsNonRoot: true}
      containers:
      - name: app
        image: registry.local/app:%(tag)s
        env: [{name: A, value: "1"}, {name: B, value: "%(b)s"}]
        volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, emptyDir: {}}]
"""


def manifest(path: Path, name: str, replicas: int, tag: str = "1", b: str = "2") -> Path:
    path.write_text(DEPLOYMENT % {"name": name, "replicas": replicas, "tag": tag, "b": b})
    return path


def test_client_side_apply_patch_and_delete(kubectl: Kubectl, tmp_path: Path) -> None:
    file = manifest(tmp_path / "d.yaml", "csa", 2)
    assert kubectl.ok("apply", "-f", str(file)).strip() == "deployment.apps/csa created"
    assert kubectl.ok("apply", "-f", str(file)).strip() == "deployment.apps/csa unchanged"
    manifest(file, "csa", 3, tag="2", b="22")
    assert kubectl.ok("apply", "-f", str(file)).strip() == "deployment.apps/csa configured"
    live = json.loads(kubectl.ok("get", "deploy", "csa", "-o", "json"))
    assert live["spec"]["replicas"] == 3 and live["metadata"]["generation"] == 2
    assert live["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"},
                                                                        {"name": "B", "value": "22"}]
    assert "kubectl.kubernetes.io/last-applied-configuration" in live["metadata"]["annotations"]
    again = kubectl.run("create", "-f", str(file))
    assert again.returncode == 1
    assert 'Error from server (AlreadyExists): error when creating "' in again.stderr
    assert 'deployments.apps "csa" already exists' in again.stderr
    kubectl.ok("patch", "deploy", "csa", "-p", '{"spec":{"template":{"spec":{"containers":[{"name":"app",'
               '"image":"registry.local/app:3"}]}}}}')
    kubectl.ok("patch", "deploy", "csa", "--type=merge", "-p", '{"metadata":{"labels":{"patched":"yes"}}}')
    kubectl.ok("patch", "deploy", "csa", "--type=json", "-p", '[{"op":"replace","path":"/spec/replicas","value":1}]')
    patched = json.loads(kubectl.ok("get", "deploy", "csa", "-o", "json"))
    assert patched["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/app:3"
    assert patched["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"] == "22"  # merged, not replaced
    assert (patched["metadata"]["labels"]["patched"], patched["spec"]["replicas"]) == ("yes", 1)
    stale = dict(patched)
    stale["metadata"] = {**patched["metadata"], "resourceVersion": "1"}
    (tmp_path / "stale.json").write_text(json.dumps(stale))
    conflict = kubectl.run("replace", "-f", str(tmp_path / "stale.json"))
    assert "Error from server (Conflict)" in conflict.stderr
    assert "the object has been modified; please apply your changes to the latest version" in conflict.stderr
    assert kubectl.ok("delete", "-f", str(file)).startswith('deployment.apps "csa" deleted')
    assert kubectl.run("get", "deploy", "csa").returncode == 1


def test_server_side_apply_owns_fields_and_reports_conflicts(kubectl: Kubectl, tmp_path: Path) -> None:
    file = manifest(tmp_path / "s.yaml", "ssa", 2)
    assert kubectl.ok("apply", "--server-side", "-f", str(file)).strip() == "deployment.apps/ssa serverside-applied"
    kubectl.ok("patch", "deploy", "ssa", "-p", '{"spec":{"replicas":5}}')
    refused = kubectl.run("apply", "--server-side", "-f", str(file))
    assert refused.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "kubectl-patch" using apps/v1: .spec.replicas' \
        in refused.stderr
    kubectl.ok("apply", "--server-side", "--force-conflicts", "-f", str(file))
    live = json.loads(kubectl.ok("get", "deploy", "ssa", "-o", "json", "--show-managed-fields"))
    assert live["spec"]["replicas"] == 2
    managers = {e["manager"]: e["operation"] for e in live["metadata"]["managedFields"]}
    assert managers.get("kubectl") == "Apply" and "kubectl-patch" not in managers
    assert kubectl.ok("diff", "-f", str(file)) == ""  # server-side dry run: nothing to change


def test_large_bodies_arrive_whole(kubectl: Kubectl, tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("x" * 300_000)
    kubectl.ok("create", "configmap", "big", f"--from-file={tmp_path / 'big.txt'}")  # protobuf body
    kubectl.ok("apply", "-f", "-", stdin=kubectl.ok("get", "configmap", "big", "-o", "yaml"))  # JSON bodies
    assert len(kubectl.ok("get", "configmap", "big", "-o", "jsonpath={.data.big\\.txt}")) == 300_000


def test_dry_run_and_deletecollection(kubectl: Kubectl, wire: KubeWire) -> None:
    assert kubectl.ok("create", "configmap", "dry", "--from-literal=a=b", "--dry-run=server").strip() == \
        "configmap/dry created (server dry run)"
    assert kubectl.run("get", "configmap", "dry").returncode == 1
    for i in range(3):
        kubectl.ok("create", "configmap", f"batch-{i}", "--from-literal=a=b")
        kubectl.ok("label", "configmap", f"batch-{i}", "batch=yes")
    status, deleted = wire.json("DELETE", "/api/v1/namespaces/default/configmaps?labelSelector=batch%3Dyes")
    assert status == 200 and deleted["kind"] == "ConfigMapList"
    assert sorted(i["metadata"]["name"] for i in deleted["items"]) == ["batch-0", "batch-1", "batch-2"]
    assert kubectl.ok("get", "configmaps", "-l", "batch=yes", "-o", "name") == ""


def test_client_side_validation_of_kubectl_120_uses_openapi_v2(kubectl20: Kubectl, tmp_path: Path) -> None:
    file = manifest(tmp_path / "old.yaml", "old-client", 1)
    assert kubectl20.ok("apply", "-f", str(file)).strip() == "deployment.apps/old-client created"
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\nbogus: 1\n")
    refused = kubectl20.run("apply", "-f", str(tmp_path / "bad.yaml"))
    assert 'unknown field "bogus" in io.k8s.api.core.v1.ConfigMap' in refused.stderr


def test_strict_field_validation_on_the_server(kubectl: Kubectl, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: strict}\nbogus: 1\n")
    refused = kubectl.run("apply", "-f", str(tmp_path / "bad.yaml"))
    assert 'strict decoding error: unknown field "bogus"' in refused.stderr
    warned = kubectl.run("apply", "--validate=warn", "-f", str(tmp_path / "bad.yaml"))
    assert warned.returncode == 0 and 'Warning: unknown field "bogus"' in warned.stderr


def test_helm_installs_upgrades_and_uninstalls(kubectl: Kubectl, tmp_path: Path) -> None:
    """Helm keeps releases in Secrets through client-go's typed client (protobuf bodies, label selectors)."""
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ .Release.Name }}-cfg'}\n"
        "data: {greeting: '{{ .Values.greeting }}'}\n")
    (chart / "values.yaml").write_text("greeting: hello\n")
    helm = Kubectl(ensure_helm(), kubectl.kubeconfig)
    assert "STATUS: deployed" in helm.ok("install", "greeter", str(chart))
    helm.ok("upgrade", "greeter", str(chart), "--set", "greeting=bonjour")
    assert kubectl.ok("get", "configmap", "greeter-cfg", "-o", "jsonpath={.data.greeting}") == "bonjour"
    assert kubectl.ok("get", "secrets", "-l", "owner=helm,name=greeter", "-o", "name").split() == [
        "secret/sh.helm.release.v1.greeter.v1", "secret/sh.helm.release.v1.greeter.v2"]
    assert helm.ok("uninstall", "greeter").strip() == 'release "greeter" uninstalled'
    assert kubectl.ok("get", "secrets,configmaps", "-l", "owner=helm", "-o", "name") == ""
    assert kubectl.run("get", "configmap", "greeter-cfg").returncode == 1


# ---------------------------------------------------------------------- watch


def test_kubectl_get_watch_shows_changes(kubectl: Kubectl) -> None:
    watcher = kubectl.popen("get", "configmaps", "--watch", "--output-watch-events", "--request-timeout=20s")
    events: list[list[str]] = []
    try:
        assert watcher.stdout is not None
        header = watcher.stdout.readline()  # the initial list has arrived: the watch is open
        assert header.split()[:2] == ["EVENT", "NAME"]
        kubectl.ok("create", "configmap", "watched", "--from-literal=a=1")
        kubectl.ok("label", "configmap", "watched", "seen=yes")
        kubectl.ok("delete", "configmap", "watched")
        while len(events) < 3 and (line := watcher.stdout.readline()):
            if "watched" in line:
                events.append(line.split()[:2])
    finally:
        watcher.kill()
        watcher.wait()
    assert events == [["ADDED", "watched"], ["MODIFIED", "watched"], ["DELETED", "watched"]]


def test_watch_stream_semantics(wire: KubeWire, kubectl: Kubectl) -> None:
    _, listed = wire.json("GET", "/api/v1/namespaces/default/secrets")
    revision = listed["metadata"]["resourceVersion"]
    kubectl.ok("create", "secret", "generic", "w1", "--from-literal=a=b")
    replayed = list(wire.events(f"/api/v1/namespaces/default/secrets?watch=1&resourceVersion={revision}"
                                "&timeoutSeconds=1"))
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in replayed] == [("ADDED", "w1")]
    bookmarked = list(wire.events("/api/v1/namespaces/default/secrets?watch=1&allowWatchBookmarks=true"
                                  f"&resourceVersion={revision}&timeoutSeconds=1"))
    assert any(e["type"] == "BOOKMARK" and int(e["object"]["metadata"]["resourceVersion"]) > int(revision)
               for e in bookmarked)
    initial = list(wire.events("/api/v1/namespaces/prod/pods?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
                               "&resourceVersionMatch=NotOlderThan&timeoutSeconds=1"))
    assert initial[0]["type"] == "ADDED"
    end = next(e for e in initial if e["type"] == "BOOKMARK")
    assert end["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    as_table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    response = wire.request("GET", "/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=1",
                            headers={"Accept": as_table})
    assert response.headers["Content-Type"] == "application/json;as=Table;v=v1;g=meta.k8s.io"
    first, second = (json.loads(line) for line in response.read().splitlines()[:2])
    assert first["object"]["kind"] == second["object"]["kind"] == "Table"
    assert [c["name"] for c in first["object"]["columnDefinitions"]][:3] == ["Name", "Ready", "Status"]
    assert "columnDefinitions" not in second["object"]  # headers only once, as kubectl prints them


def test_python_client_lists_and_watches(standin: KubeStandin, configs: dict[str, Path]) -> None:
    from kubernetes import client, config, watch

    api = client.CoreV1Api(config.new_client_from_config(str(configs["admin"])))
    pods = api.list_namespaced_pod("default")
    assert {p.metadata.name for p in pods.items} >= {PAYMENTS_POD, WEB_POD}

    def churn() -> None:
        time.sleep(0.5)
        api.create_namespaced_config_map("default", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="py-watched"), data={"a": "1"}))
        api.patch_namespaced_config_map("py-watched", "default", {"data": {"a": "2"}})
        api.delete_namespaced_config_map("py-watched", "default")

    threading.Thread(target=churn, daemon=True).start()
    seen = []
    stream = watch.Watch()
    for event in stream.stream(api.list_namespaced_config_map, "default",
                               resource_version=pods.metadata.resource_version, timeout_seconds=5):
        if event["object"].metadata.name == "py-watched":
            seen.append((event["type"], (event["object"].data or {}).get("a")))
        if len(seen) == 3:
            stream.stop()
    assert seen == [("ADDED", "1"), ("MODIFIED", "2"), ("DELETED", "2")]
    with pytest.raises(client.ApiException) as missing:
        api.read_namespaced_secret("nope", "default")
    assert missing.value.status == 404 and json.loads(missing.value.body)["reason"] == "NotFound"


# ---------------------------------------------------------------------- logs and exec


def test_logs_whole_tailed_and_followed(kubectl: Kubectl, standin: KubeStandin) -> None:
    logs = kubectl.ok("logs", PAYMENTS_POD)
    assert f"charge accepted for card {TEST_CARD}" in logs
    assert kubectl.ok("logs", PAYMENTS_POD, "--tail=1").strip() == "health check ok"
    assert kubectl.ok("logs", PAYMENTS_POD, "--tail=1", "--timestamps").split(" ", 1)[0].endswith("Z")
    kubectl.ok("run", "logger", "--image=registry.local/logger:1")
    follower = kubectl.popen("logs", "-f", "logger")
    try:
        time.sleep(0.7)
        standin.append_log("default", "logger", "logger", "first line", f"paid with {TEST_CARD}")
        time.sleep(0.7)
        kubectl.ok("delete", "pod", "logger", "--wait=false")
        output, _ = follower.communicate(timeout=10)  # the stream ends when the pod goes
    finally:
        follower.kill()
    assert output.splitlines() == ["first line", f"paid with {TEST_CARD}"]


def test_exec_over_websocket_runs_a_real_process(kubectl: Kubectl) -> None:
    result = kubectl.run("exec", PAYMENTS_POD, "--", "sh", "-c", 'echo "$TEST_CARD"; echo to-stderr >&2; exit 3')
    assert result.returncode == 3
    assert result.stdout == f"{TEST_CARD}\n"
    assert "to-stderr" in result.stderr and "command terminated with exit code 3" in result.stderr
    echoed = kubectl.ok("exec", "-i", WEB_POD, "--", "sh", "-c", "cat; pwd", stdin="over stdin\n")
    lines = echoed.splitlines()
    assert lines[0] == "over stdin" and lines[1].endswith(f"/default/{WEB_POD}/web/root")
    missing = kubectl.run("exec", WEB_POD, "--", "no-such-command")
    assert 'exec: "no-such-command": executable file not found in $PATH' in missing.stderr


def test_exec_with_a_terminal(kubectl: Kubectl, kubectl20: Kubectl) -> None:
    for client in (kubectl, kubectl20):  # WebSocket v5 and SPDY: the terminal size reaches the process
        code, screen = client.in_terminal("exec", "-it", WEB_POD, "--", "sh",
                                          typed=b"stty size; tty; exit 7\n", rows=33, cols=101)
        assert code == 7, screen
        assert "33 101" in screen and "/dev/pts/" in screen


def test_exec_over_spdy_from_both_kubectls(kubectl: Kubectl, kubectl20: Kubectl) -> None:
    fallback = kubectl.run("exec", "-i", WEB_POD, "--", "sh", "-c", "cat; exit 4", stdin="via spdy\n",
                           env={"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"})
    assert (fallback.returncode, fallback.stdout) == (4, "via spdy\n")
    old = kubectl20.run("exec", "-i", PAYMENTS_POD, "--", "sh", "-c", "cat; echo $AWS_ACCESS_KEY_ID; exit 5",
                        stdin="from 1.20\n")
    assert (old.returncode, old.stdout) == (5, f"from 1.20\n{AWS_ACCESS_KEY_ID}\n")
    assert "command terminated with exit code 5" in old.stderr


def test_python_client_exec_over_v4(configs: dict[str, Path]) -> None:
    from kubernetes import client, config
    from kubernetes.stream import stream

    api = client.CoreV1Api(config.new_client_from_config(str(configs["admin"])))
    out = stream(api.connect_get_namespaced_pod_exec, WEB_POD, "default", command=["sh", "-c", "echo hi; echo e >&2"],
                 stderr=True, stdin=False, stdout=True, tty=False)
    assert out == "hi\ne\n"


# ---------------------------------------------------------------------- authentication and impersonation


def test_tokens_identities_and_impersonation(standin: KubeStandin, configs: dict[str, Path], kubectl: Kubectl) -> None:
    unknown = kubectl.run("--token=not-a-token", "get", "pods")
    assert unknown.stderr.strip() == "error: You must be logged in to the server (Unauthorized)"
    viewer = Kubectl(kubectl.binary, configs["viewer"])
    assert PAYMENTS_POD in viewer.ok("get", "pods")
    forbidden = viewer.run("get", "secrets")
    assert forbidden.stderr.strip() == ('Error from server (Forbidden): secrets is forbidden: User "viewer" cannot '
                                        'list resource "secrets" in API group "" in the namespace "default"')
    refused = viewer.run("get", "pods", "--as=alice")
    assert 'users "alice" is forbidden: User "viewer" cannot impersonate resource "users"' in refused.stderr

    gateway = Kubectl(kubectl.binary, configs["gateway"])
    assert gateway.run("get", "pods").returncode == 1  # the gateway itself has no rights, only impersonation
    whoami = gateway.ok("auth", "whoami", "--as=agent-7", "--as-group=airlock:view").split()
    assert whoami == ["ATTRIBUTE", "VALUE", "Username", "agent-7", "Groups", "[airlock:view", "system:authenticated]"]
    assert gateway.ok("auth", "can-i", "list", "pods", "--as=agent-7", "--as-group=airlock:view").strip() == "yes"
    assert gateway.run("auth", "can-i", "get", "secrets", "--as=agent-7", "--as-group=airlock:view").stdout.strip() \
        == "no"
    assert WEB_POD in gateway.ok("get", "pods", "--as=agent-7", "--as-group=airlock:view")
    denied = gateway.run("delete", "pod", WEB_POD, "--as=agent-7", "--as-group=airlock:view")
    assert 'User "agent-7" cannot delete resource "pods"' in denied.stderr
    audited = [e for e in standin.audit_events() if e.get("impersonatedUser", {}).get("username") == "agent-7"]
    assert {(e["verb"], e["responseStatus"]["code"], e["annotations"]["authorization.k8s.io/decision"])
            for e in audited} >= {("list", 200, "allow"), ("delete", 403, "forbid")}
    assert all(e["user"]["username"] == "system:serviceaccount:airlock-system:airlock-gateway" for e in audited)
    assert all("airlock:view" in e["impersonatedUser"]["groups"] for e in audited)
    assert not any(standin.tokens["gateway"] in json.dumps(e) for e in standin.audit_events())


def test_service_account_tokens_authenticate(kubectl: Kubectl) -> None:
    kubectl.ok("create", "serviceaccount", "robot")
    token = kubectl.ok("create", "token", "robot", "--duration=15m").strip()
    refused = kubectl.run(f"--token={token}", "get", "pods")
    assert 'User "system:serviceaccount:default:robot" cannot list resource "pods"' in refused.stderr
    kubectl.ok("delete", "serviceaccount", "robot")
    gone = kubectl.run(f"--token={token}", "get", "pods")
    assert "Unauthorized" in gone.stderr

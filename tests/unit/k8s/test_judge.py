"""Judging Kubernetes API requests: effects, rules, pod features wherever a pod spec sits, bodies Airlock
cannot read."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from shared.guard.verdict import Action
from shared.k8s.body import decode_body
from shared.k8s.effects import PodFeature
from shared.k8s.judge import KubeRequest, KubernetesJudge, Verdict, request_effects
from shared.k8s.podspec import is_node_socket, pod_features
from shared.k8s.policy import KubernetesAccess, KubernetesGuardrails
from shared.k8s.requestinfo import decode_target, request_info
from shared.k8s.rules import resource_matches
from tests.unit.kube.test_wire_codecs import KUBECTL_SECRET

RULES = KubernetesGuardrails.model_validate(yaml.safe_load("""
rules:
  - {name: no-host, match: {pod_spec: [privileged, host_path, host_network, host_pid, host_ipc, node_socket]},
     action: deny, reason: pods may not reach the node}
  - {name: no-bulk, match: {verbs: [deletecollection]}, action: deny}
  - {name: no-ns-deletes, match: {verbs: [delete], resources: [namespaces]}, action: deny}
  - {name: prod-deletes, match: {verbs: [delete], groups: [apps], resources: [deployments], namespaces: [prod]},
     action: hold, approvers: sre}
  - {name: no-exec-in-prod, match: {resources: [pods/exec], namespaces: [prod]}, action: deny}
  - {name: keep-db-secret, match: {resources: [secrets], names: [db-*]}, action: deny}
"""))


def judge(method: str, target: str, body: Any = None, content_type: str = "application/json", *,
          policy: KubernetesGuardrails = RULES, access: KubernetesAccess | None = None) -> Verdict:  # fmt: skip
    path, query = decode_target(target)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
    decoded = decode_body(content_type, raw) if raw else None
    return KubernetesJudge(policy, access or KubernetesAccess()).judge(
        KubeRequest(method, request_info(method, path, query), decoded))


def pod_spec(**extra: Any) -> dict[str, Any]:
    return {"containers": [{"name": "c", "image": "i"}], **extra}


PRIVILEGED = {"containers": [{"name": "c", "image": "i", "securityContext": {"privileged": True}}]}
TEMPLATE = {"metadata": {"labels": {"a": "b"}}, "spec": PRIVILEGED}


@pytest.mark.parametrize(("target", "body", "where"), [
    ("/api/v1/namespaces/d/pods", {"kind": "Pod", "metadata": {"name": "p"}, "spec": PRIVILEGED}, "spec"),
    ("/apis/apps/v1/namespaces/d/deployments", {"kind": "Deployment", "spec": {"template": TEMPLATE}},
     "spec.template.spec"),
    ("/apis/apps/v1/namespaces/d/statefulsets", {"kind": "StatefulSet", "spec": {"template": TEMPLATE}},
     "spec.template.spec"),
    ("/apis/apps/v1/namespaces/d/daemonsets", {"kind": "DaemonSet", "spec": {"template": TEMPLATE}},
     "spec.template.spec"),
    ("/apis/apps/v1/namespaces/d/replicasets", {"kind": "ReplicaSet", "spec": {"template": TEMPLATE}},
     "spec.template.spec"),
    ("/api/v1/namespaces/d/replicationcontrollers", {"kind": "ReplicationController", "spec": {"template": TEMPLATE}},
     "spec.template.spec"),
    ("/apis/batch/v1/namespaces/d/jobs", {"kind": "Job", "spec": {"template": TEMPLATE}}, "spec.template.spec"),
    ("/apis/batch/v1/namespaces/d/cronjobs",
     {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": TEMPLATE}}}},
     "spec.jobTemplate.spec.template.spec"),
    ("/api/v1/namespaces/d/podtemplates", {"kind": "PodTemplate", "template": TEMPLATE}, "template.spec"),
    ("/apis/argoproj.io/v1alpha1/namespaces/d/rollouts", {"kind": "Rollout", "spec": {"template": TEMPLATE}},
     "spec.template.spec"),
])  # fmt: skip
def test_a_privileged_container_is_refused_in_every_pod_template(target: str, body: Any, where: str) -> None:
    verdict = judge("POST", target, body)
    assert (verdict.action, verdict.rule) == (Action.DENY, "no-host")
    assert verdict.effect.feature is PodFeature.PRIVILEGED
    assert verdict.effect.where == f"{where}.containers[0].securityContext.privileged"
    assert "a privileged container" in verdict.message()


@pytest.mark.parametrize(("spec", "features"), [
    (pod_spec(hostNetwork=True), {PodFeature.HOST_NETWORK}),
    (pod_spec(hostPID=True, hostIPC=True), {PodFeature.HOST_PID, PodFeature.HOST_IPC}),
    (pod_spec(hostNetwork=False), set()),
    (pod_spec(volumes=[{"name": "v", "hostPath": {"path": "/data"}}]), {PodFeature.HOST_PATH}),
    (pod_spec(volumes=[{"name": "v", "hostPath": {"path": "/var/run/docker.sock"}}]),
     {PodFeature.HOST_PATH, PodFeature.NODE_SOCKET}),
    (pod_spec(volumes=[{"name": "v", "hostPath": {"path": "/run/containerd/"}}]),
     {PodFeature.HOST_PATH, PodFeature.NODE_SOCKET}),
    (pod_spec(volumes=[{"name": "v", "hostPath": {"path": "/srv/x.sock", "type": "Socket"}}]),
     {PodFeature.HOST_PATH, PodFeature.NODE_SOCKET}),
    ({"containers": [{"name": "c", "securityContext": {"windowsOptions": {"hostProcess": True}}}]},
     {PodFeature.PRIVILEGED}),
    ({"initContainers": [{"name": "c", "securityContext": {"privileged": True}}]}, {PodFeature.PRIVILEGED}),
    ({"ephemeralContainers": [{"name": "c", "securityContext": {"privileged": True}}]}, {PodFeature.PRIVILEGED}),
    ({"containers": [{"name": "c", "securityContext": {"privileged": "true"}}]}, set()),  # the server refuses it
])  # fmt: skip
def test_pod_features(spec: dict[str, Any], features: set[PodFeature]) -> None:
    assert {f for f, _ in pod_features({"spec": spec})} == features


def test_a_crd_describing_pod_fields_is_not_a_pod() -> None:
    schema = {"properties": {"hostNetwork": {"type": "boolean"}, "privileged": {"type": "boolean"},
                             "hostPath": {"type": "object", "properties": {"path": {"type": "string"}}}}}
    assert pod_features({"spec": {"versions": [{"schema": {"openAPIV3Schema": schema}}]}}) == []


def test_node_sockets() -> None:
    assert is_node_socket("/")
    assert is_node_socket("/var/run")
    assert is_node_socket("/var/lib/kubelet/")
    assert is_node_socket("/run/../run/crio/crio.sock")
    assert not is_node_socket("/var/log")
    assert not is_node_socket(None)


def test_patches_are_judged_by_what_they_write() -> None:
    target = "/apis/apps/v1/namespaces/d/deployments/web"
    container = {"name": "c", "securityContext": {"privileged": True}}
    strategic = {"spec": {"template": {"spec": {"containers": [container]}}}}
    assert judge("PATCH", target, strategic, "application/strategic-merge-patch+json").rule == "no-host"
    assert judge("PATCH", target, {"spec": {"template": {"spec": {"hostPID": True}}}},
                 "application/merge-patch+json").rule == "no-host"  # fmt: skip
    ops = [{"op": "add", "path": "/spec/template/spec/volumes/-", "value": {"name": "v", "hostPath": {"path": "/"}}}]
    verdict = judge("PATCH", target, ops, "application/json-patch+json")
    assert verdict.rule == "no-host"
    assert {e.feature for e in verdict.effects if e.feature} == {PodFeature.HOST_PATH, PodFeature.NODE_SOCKET}
    ops = [{"op": "replace", "path": "/spec/template/spec/containers/0/securityContext/privileged", "value": True}]
    assert judge("PATCH", target, ops, "application/json-patch+json").effect.feature is PodFeature.PRIVILEGED
    ops = [{"op": "copy", "from": "/spec/a", "path": "/spec/template/spec/containers/0/securityContext"}]
    assert judge("PATCH", target, ops, "application/json-patch+json").rule == "unknown"
    applied = yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                              "spec": {"template": {"spec": {"hostNetwork": True}}}}).encode()  # fmt: skip
    assert judge("PATCH", target, applied, "application/apply-patch+yaml").rule == "no-host"
    harmless = [{"op": "replace", "path": "/spec/replicas", "value": 3}]
    assert judge("PATCH", target, harmless, "application/json-patch+json").action is Action.ALLOW


def test_bodies_airlock_cannot_read_are_unknown() -> None:
    target = "/apis/apps/v1/namespaces/d/deployments"
    repeated = b'{"spec": {"template": {"spec": {"hostNetwork": true, "hostNetwork": false}}}}'
    verdict = judge("POST", target, repeated)
    assert (verdict.action, verdict.rule) == (Action.DENY, "unknown")
    assert "appears twice" in verdict.message()
    assert judge("POST", target, b"\xa1\x01", "application/cbor").rule == "unknown"
    assert judge("POST", target, b"{not json").rule == "unknown"
    assert judge("POST", target, b"a: 1\na: 2\n", "application/yaml").rule == "unknown"
    nested = b"[" * 400 + b"]" * 400
    assert judge("POST", target, nested).rule == "unknown"
    lenient = KubernetesGuardrails(unknown=Action.ALLOW)
    assert judge("POST", target, b"{not json", policy=lenient).action is Action.ALLOW


def test_protobuf_bodies_are_decoded_and_judged() -> None:
    verdict = judge("POST", "/api/v1/namespaces/d/secrets", KUBECTL_SECRET, "application/vnd.kubernetes.protobuf")
    assert verdict.action is Action.ALLOW
    assert verdict.effect.name == "s2"  # the name of a create comes from its body
    named = judge("POST", "/api/v1/namespaces/d/secrets", {"metadata": {"name": "db-main"}})
    assert named.rule == "keep-db-secret"


def test_verbs_resources_namespaces_and_names() -> None:
    assert judge("DELETE", "/api/v1/namespaces/d/configmaps").rule == "no-bulk"
    assert judge("DELETE", "/api/v1/namespaces/prod").rule == "no-ns-deletes"
    assert judge("DELETE", "/apis/apps/v1/namespaces/prod/deployments/web").action is Action.HOLD
    assert judge("DELETE", "/apis/apps/v1/namespaces/dev/deployments/web").action is Action.ALLOW
    # exec is create whatever the method (a WebSocket GET is authorized as create too)
    assert judge("GET", "/api/v1/namespaces/prod/pods/x/exec?command=sh").rule == "no-exec-in-prod"
    assert judge("POST", "/api/v1/namespaces/prod/pods/x/exec?command=sh").rule == "no-exec-in-prod"
    # a list across every namespace may be in prod: a deny or hold rule naming prod applies ...
    assert judge("DELETE", "/apis/apps/v1/deployments/web").action is Action.HOLD
    # ... and one naming names applies to requests that name none
    assert judge("GET", "/api/v1/namespaces/d/secrets").rule == "keep-db-secret"
    assert judge("GET", "/api/v1/namespaces/d/secrets/web").action is Action.ALLOW
    assert judge("GET", "/api/v1/namespaces/d/secrets?fieldSelector=metadata.name%3Ddb-x").rule == "keep-db-secret"


def test_an_allow_list_never_allows_a_pod_feature_by_accident() -> None:
    allow_list = KubernetesGuardrails.model_validate({"default": "deny", "rules": [
        {"name": "reads", "match": {"verbs": ["get", "list", "watch"]}, "action": "allow"},
        {"name": "dev-pods", "match": {"verbs": ["create"], "resources": ["pods"], "namespaces": ["dev"]},
         "action": "allow"},
        {"name": "dev-host-network", "match": {"pod_spec": ["host_network"], "namespaces": ["dev"]}, "action": "allow"},
    ]})  # fmt: skip
    pod = {"metadata": {"name": "p"}, "spec": pod_spec()}
    assert judge("POST", "/api/v1/namespaces/dev/pods", pod, policy=allow_list).action is Action.ALLOW
    privileged = {"metadata": {"name": "p"}, "spec": PRIVILEGED}
    verdict = judge("POST", "/api/v1/namespaces/dev/pods", privileged, policy=allow_list)
    assert (verdict.action, verdict.rule) == (Action.DENY, "default")
    host = {"metadata": {"name": "p"}, "spec": pod_spec(hostNetwork=True)}
    assert judge("POST", "/api/v1/namespaces/dev/pods", host, policy=allow_list).action is Action.ALLOW
    assert judge("POST", "/api/v1/namespaces/qa/pods", host, policy=allow_list).action is Action.DENY
    assert judge("DELETE", "/api/v1/namespaces/dev/pods/p", policy=allow_list).action is Action.DENY


def test_discovery_is_allowed_unless_a_rule_says_otherwise() -> None:
    strict = KubernetesGuardrails(default=Action.DENY)
    for target in ("/api", "/apis", "/api/v1", "/apis/apps/v1", "/version", "/openapi/v2", "/openapi/v3/apis/apps/v1"):
        verdict = judge("GET", target, policy=strict)
        assert verdict.action is Action.ALLOW and verdict.effect.discovery, target
    assert judge("GET", "/metrics", policy=strict).action is Action.DENY
    no_openapi = KubernetesGuardrails.model_validate(
        {"rules": [{"name": "no-openapi", "match": {"paths": ["/openapi/*"]}, "action": "deny"}]})
    assert judge("GET", "/openapi/v2", policy=no_openapi).rule == "no-openapi"


def test_read_only_access_and_the_bindings_namespaces() -> None:
    read_only = KubernetesGuardrails(access="read_only")
    assert judge("GET", "/api/v1/namespaces/d/pods", policy=read_only).action is Action.ALLOW
    assert judge("DELETE", "/api/v1/namespaces/d/pods/x", policy=read_only).rule == "read_only"
    assert judge("POST", "/api/v1/namespaces/d/pods/x/exec", policy=read_only).rule == "read_only"
    whoami = judge("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {"kind": "SelfSubjectReview"},
                   policy=read_only)  # fmt: skip
    assert whoami.action is Action.ALLOW
    default_only = KubernetesAccess(namespaces=["default", "team-*"])
    assert judge("GET", "/api/v1/namespaces/team-a/pods", access=default_only).action is Action.ALLOW
    other = judge("GET", "/api/v1/namespaces/prod/pods", access=default_only)
    assert (other.action, other.rule) == (Action.DENY, "namespaces")
    assert judge("GET", "/api/v1/pods", access=default_only).rule == "namespaces"  # every namespace
    assert judge("GET", "/api/v1/nodes", access=default_only).action is Action.ALLOW  # cluster-scoped
    assert judge("GET", "/api/v1/namespaces/prod", access=default_only).rule == "namespaces"
    assert judge("POST", "/api/v1/namespaces", {"metadata": {"name": "prod"}}, access=default_only).rule == "namespaces"


def test_dry_run_decides_but_does_not_block() -> None:
    dry = RULES.model_copy(update={"dry_run": True})
    verdict = judge("DELETE", "/api/v1/namespaces/prod", policy=dry)
    assert verdict.action is Action.DENY and not verdict.enforced and not verdict.blocks


def test_paths_airlock_cannot_read_are_unknown() -> None:
    path, query = decode_target("/api/v1/watch")
    verdict = KubernetesJudge(RULES, KubernetesAccess()).judge(KubeRequest("GET", request_info("GET", path, query)))
    assert verdict.rule == "unknown"
    effects = request_effects(KubeRequest("GET", request_info("GET", "/api/v1/pods/../secrets", {}),
                                          target_error="dot segments"))  # fmt: skip
    assert [e.unknown for e in effects] == ["dot segments"]


def test_rbac_style_resources() -> None:
    assert resource_matches("*", "pods", "exec")
    assert resource_matches("pods", "pods", "")
    assert not resource_matches("pods", "pods", "exec")
    assert resource_matches("pods/*", "pods", "exec") and not resource_matches("pods/*", "pods", "")
    assert resource_matches("*/scale", "deployments", "scale")
    assert not resource_matches("pod*", "pods", "exec")


def test_rules_that_cannot_mean_anything_are_refused() -> None:
    with pytest.raises(ValueError, match="databases"):
        KubernetesGuardrails.model_validate({"rules": [{"name": "x", "match": {"databases": ["a"]}, "action": "deny"}]})
    with pytest.raises(ValueError, match="cannot name both"):
        KubernetesGuardrails.model_validate(
            {"rules": [{"name": "x", "match": {"paths": ["/x"], "resources": ["pods"]}, "action": "deny"}]})
    everything = KubernetesGuardrails.model_validate({"rules": [{"name": "x", "action": "deny"}]})
    assert everything.warnings() == ["kubernetes.rules[0] (x): matches every request"]


def test_the_documented_policy_reads_and_judges_as_documented() -> None:
    from pathlib import Path

    from shared.k8s.policy import KubernetesTargetSpec

    page = (Path(__file__).resolve().parents[3] / "docs" / "policy.md").read_text()
    section = page[page.index("## Kubernetes") :]
    document = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    KubernetesTargetSpec.model_validate(document["targets"]["prod-cluster"])
    access = KubernetesAccess.model_validate(document["bindings"][0]["kubernetes"])
    policy = KubernetesGuardrails.model_validate(document["kubernetes"])
    assert judge("DELETE", "/apis/apps/v1/namespaces/prod/deployments/web", policy=policy, access=access).rule == \
        "namespaces"  # prod is not among the binding's namespaces
    assert judge("DELETE", "/apis/apps/v1/namespaces/prod/deployments/web", policy=policy).action is Action.HOLD
    assert judge("GET", "/api/v1/namespaces/team-a/pods", policy=policy, access=access).action is Action.ALLOW

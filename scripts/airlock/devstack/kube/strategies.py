"""Per-kind registry strategies: defaulting, validation and the status the stand-in's "controllers" set.

As in the API server, a write is defaulted, then validated (422 Invalid with one cause per field error,
worded as apimachinery's field errors are), and only then stored. There are no controllers and no nodes:
a created pod is at once scheduled on the stand-in's one node and Running with every container ready; a
deployment's status at once reports all replicas available (no ReplicaSets or pods are created); a
namespace gets its ``default`` ServiceAccount and ``kube-root-ca.crt`` ConfigMap.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import uuid
from collections.abc import Callable
from typing import Any

from .kinds import CONFIGMAPS, DEPLOYMENTS, NAMESPACES, PODS, SECRETS, SERVICEACCOUNTS, ResourceType
from .selectors import SelectorError, parse_label_selector
from .status import Cause

Obj = dict[str, Any]

NODE_NAME = "airlock-standin-node"
NODE_IP = "10.96.0.10"

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")

SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
CONFIG_KEY_MESSAGE = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quote(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    return str(value)


def required(field: str, detail: str = "") -> Cause:
    return Cause("FieldValueRequired", "Required value" + (f": {detail}" if detail else ""), field)


def invalid_value(field: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {_quote(value)}: {detail}", field)


def forbidden_field(field: str, detail: str) -> Cause:
    return Cause("FieldValueForbidden", f"Forbidden: {detail}", field)


def duplicate(field: str, value: Any) -> Cause:
    return Cause("FieldValueDuplicate", f"Duplicate value: {_quote(value)}", field)


def not_supported(field: str, value: Any, supported: tuple[str, ...]) -> Cause:
    options = ", ".join(f'"{s}"' for s in supported)
    return Cause("FieldValueNotSupported", f"Unsupported value: {_quote(value)}: supported values: {options}", field)


def _name_causes(rt: ResourceType, meta: Obj) -> list[Cause]:
    name = meta.get("name")
    if not name:
        return [required("metadata.name", "name or generateName is required")]
    if rt is NAMESPACES:
        if len(name) > 63 or not _LABEL.match(name):
            return [invalid_value("metadata.name", name, LABEL_MESSAGE)]
    elif len(name) > 253 or not _SUBDOMAIN.match(name):
        return [invalid_value("metadata.name", name, SUBDOMAIN_MESSAGE)]
    return []


def _metadata_causes(meta: Obj) -> list[Cause]:
    causes: list[Cause] = []
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        return [invalid_value("metadata.labels", labels, "must be a map of strings")]
    for key, value in labels.items():
        name = key.rsplit("/", 1)[-1]
        if len(name) > 63 or not _QUALIFIED_NAME.match(name):
            causes.append(invalid_value("metadata.labels", key, "name part must consist of alphanumeric characters, "
                                        "'-', '_' or '.', and must start and end with an alphanumeric character"))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(invalid_value("metadata.labels", value, LABEL_VALUE_MESSAGE))
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict) or any(not isinstance(v, str) for v in annotations.values()):
        causes.append(invalid_value("metadata.annotations", annotations, "must be a map of strings"))
    return causes


# ---------------------------------------------------------------------- defaults


def _image_pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def default_pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if not isinstance(container, dict):
                continue
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault("imagePullPolicy", _image_pull_policy(str(container.get("image", ""))))
            container.setdefault("resources", {})
            for port in container.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


def _default(rt: ResourceType, obj: Obj) -> None:
    if rt is PODS:
        spec = obj.setdefault("spec", {})
        default_pod_spec(spec)
        spec.setdefault("enableServiceLinks", True)
    elif rt is DEPLOYMENTS:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        strategy = spec.get("strategy") or {}
        strategy["type"] = strategy.get("type") or "RollingUpdate"
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec["strategy"] = strategy
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        template = spec.setdefault("template", {})
        template.setdefault("metadata", {})
        default_pod_spec(template.setdefault("spec", {}))
    elif rt is SECRETS:
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = obj.setdefault("data", {}) or {}
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data
    elif rt is NAMESPACES:
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj.setdefault("status", {"phase": "Active"})
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]


# ---------------------------------------------------------------------- validation


def _validate_containers(containers: Any, field: str, causes: list[Cause], *, needed: bool) -> None:
    if not containers:
        if needed:
            causes.append(required(field))
        return
    if not isinstance(containers, list):
        causes.append(invalid_value(field, containers, "must be a list"))
        return
    seen: set[str] = set()
    for i, container in enumerate(containers):
        where = f"{field}[{i}]"
        if not isinstance(container, dict):
            causes.append(invalid_value(where, container, "must be an object"))
            continue
        name = container.get("name")
        if not name:
            causes.append(required(f"{where}.name"))
        elif not isinstance(name, str) or len(name) > 63 or not _LABEL.match(name):
            causes.append(invalid_value(f"{where}.name", name, LABEL_MESSAGE))
        elif name in seen:
            causes.append(duplicate(f"{where}.name", name))
        else:
            seen.add(name)
        if not container.get("image"):
            causes.append(required(f"{where}.image"))
        for key in ("command", "args"):
            value = container.get(key)
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                causes.append(invalid_value(f"{where}.{key}", value, "must be a list of strings"))


def validate_pod_spec(spec: Any, field: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(spec, dict):
        return [required(field)]
    _validate_containers(spec.get("containers"), f"{field}.containers", causes, needed=True)
    _validate_containers(spec.get("initContainers"), f"{field}.initContainers", causes, needed=False)
    restart = spec.get("restartPolicy")
    if restart not in ("Always", "OnFailure", "Never"):
        causes.append(not_supported(f"{field}.restartPolicy", restart, ("Always", "OnFailure", "Never")))
    return causes


def _validate_data_keys(data: Any, field: str) -> list[Cause]:
    if data is None:
        return []
    if not isinstance(data, dict):
        return [invalid_value(field, data, "must be a map")]
    return [invalid_value(f"{field}[{key}]", key, CONFIG_KEY_MESSAGE) for key in data
            if len(key) > 253 or not _CONFIG_KEY.match(key)]


def validate(rt: ResourceType, obj: Obj, old: Obj | None) -> list[Cause]:
    """Field errors of a defaulted object (``old`` is the stored object on update)."""
    meta = obj.get("metadata") or {}
    causes = _name_causes(rt, meta) + _metadata_causes(meta)
    if rt is PODS:
        causes += validate_pod_spec(obj.get("spec"), "spec")
        if old is not None:
            causes += _pod_update_causes(old, obj)
    elif rt is DEPLOYMENTS:
        causes += _deployment_causes(obj, old)
    elif rt is SECRETS:
        causes += _validate_data_keys(obj.get("data"), "data")
        for key, value in (obj.get("data") or {}).items():
            if not isinstance(value, str):
                causes.append(invalid_value(f"data[{key}]", value, "must be a base64 encoded string"))
        if old is not None:
            causes += _immutable_data_causes(old, obj, ("data",))
            if old.get("type") != obj.get("type"):
                causes.append(invalid_value("type", obj.get("type"), "field is immutable"))
    elif rt is CONFIGMAPS:
        causes += _validate_data_keys(obj.get("data"), "data") + _validate_data_keys(obj.get("binaryData"),
                                                                                    "binaryData")
        for key in set(obj.get("data") or {}) & set(obj.get("binaryData") or {}):
            causes.append(invalid_value("data", key, "duplicate of key present in binaryData"))
        if old is not None:
            causes += _immutable_data_causes(old, obj, ("data", "binaryData"))
    return causes


def _immutable_data_causes(old: Obj, new: Obj, fields: tuple[str, ...]) -> list[Cause]:
    if not old.get("immutable"):
        return []
    causes = [forbidden_field(f, "field is immutable when `immutable` is set") for f in fields
              if old.get(f) != new.get(f)]
    if not new.get("immutable"):
        causes.append(forbidden_field("immutable", "field is immutable when `immutable` is set"))
    return causes


_POD_MUTABLE = (
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def _pod_update_causes(old: Obj, new: Obj) -> list[Cause]:
    def comparable(pod: Obj) -> Obj:
        spec = dict(pod.get("spec") or {})
        for key in ("activeDeadlineSeconds", "tolerations"):
            spec.pop(key, None)
        for key in ("containers", "initContainers"):
            spec[key] = [{k: v for k, v in c.items() if k != "image"} for c in spec.get(key) or []
                         if isinstance(c, dict)]
        return spec

    if comparable(old) != comparable(new):
        return [forbidden_field("spec", _POD_MUTABLE)]
    return []


def _deployment_causes(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        causes.append(invalid_value("spec.replicas", replicas, "must be greater than or equal to 0"))
    selector = spec.get("selector")
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not selector:
        causes.append(required("spec.selector"))
    else:
        match_labels = selector.get("matchLabels") or {} if isinstance(selector, dict) else {}
        expressions = selector.get("matchExpressions") or [] if isinstance(selector, dict) else []
        if not match_labels and not expressions:
            causes.append(invalid_value("spec.selector", selector, "empty selector is invalid for deployment"))
        elif not _selector_matches(selector, labels):
            rendered = "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items())) + "}"
            causes.append(Cause("FieldValueInvalid",
                                f"Invalid value: {rendered}: `selector` does not match template `labels`",
                                "spec.template.metadata.labels"))
    causes += validate_pod_spec(template.get("spec"), "spec.template.spec")
    if template.get("spec") and (template["spec"].get("restartPolicy") != "Always"):
        causes.append(not_supported("spec.template.spec.restartPolicy", template["spec"].get("restartPolicy"),
                                    ("Always",)))
    if old is not None and (old.get("spec") or {}).get("selector") != selector:
        causes.append(invalid_value("spec.selector", selector, "field is immutable"))
    return causes


def _selector_matches(selector: Obj, labels: Obj) -> bool:
    match_labels = selector.get("matchLabels") or {}
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    parts = []
    for expression in selector.get("matchExpressions") or []:
        if not isinstance(expression, dict):
            return False
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if operator == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif operator == "Exists":
            parts.append(str(key))
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            return False
    try:
        return parse_label_selector(",".join(parts)).matches(labels)
    except SelectorError:
        return False


# ---------------------------------------------------------------------- lifecycle


class Lifecycle:
    """Create/update hooks: server-set metadata, generation and the status no controller would set here."""

    def __init__(self) -> None:
        self._next_ip = 10

    def prepare_create(self, rt: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        for key in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "generation",
                    "selfLink", "deletionGracePeriodSeconds"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        _default(rt, obj)
        if rt is DEPLOYMENTS:
            meta["generation"] = 1
            meta.setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "1"
            obj["status"] = _deployment_status(obj)
        elif rt is PODS:
            self._schedule(obj)
        elif rt is NAMESPACES:
            obj["status"] = {"phase": "Active"}

    def prepare_update(self, rt: ResourceType, obj: Obj, old: Obj) -> None:
        meta, old_meta = obj["metadata"], old["metadata"]
        for key in ("uid", "creationTimestamp", "generation", "deletionTimestamp"):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        _default(rt, obj)
        if "status" in old:
            obj["status"] = old["status"]  # the main resource never writes status
        if rt is DEPLOYMENTS:
            if obj.get("spec") != old.get("spec"):
                meta["generation"] = int(old_meta.get("generation", 1)) + 1
            obj["status"] = _deployment_status(obj)
        elif rt is PODS:
            self._sync_container_statuses(obj)

    def _schedule(self, pod: Obj) -> None:
        spec = pod["spec"]
        spec.setdefault("serviceAccountName", "default")
        spec["serviceAccount"] = spec["serviceAccountName"]
        spec.setdefault("nodeName", NODE_NAME)
        spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("tolerations", [
            {"key": f"node.kubernetes.io/{taint}", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 300} for taint in ("not-ready", "unreachable")
        ])
        self._next_ip += 1
        ip = f"10.244.0.{self._next_ip % 250 + 2}"
        started = now()
        conditions = [{"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": started}
                      for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                                "PodScheduled")]
        pod["status"] = {
            "phase": "Running",
            "conditions": conditions,
            "hostIP": NODE_IP,
            "hostIPs": [{"ip": NODE_IP}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": started,
            "qosClass": "BestEffort",
        }
        self._sync_container_statuses(pod)

    @staticmethod
    def _sync_container_statuses(pod: Obj) -> None:
        status = pod.setdefault("status", {})
        started = status.get("startTime", now())
        statuses = []
        for container in pod.get("spec", {}).get("containers") or []:
            image = str(container.get("image", ""))
            statuses.append({
                "name": container.get("name"),
                "state": {"running": {"startedAt": started}},
                "lastState": {},
                "ready": True,
                "restartCount": 0,
                "image": image,
                "imageID": f"{image}@sha256:" + uuid.uuid5(uuid.NAMESPACE_URL, image).hex * 2,
                "containerID": "standin://" + uuid.uuid5(uuid.NAMESPACE_OID, str(container.get("name"))).hex,
                "started": True,
            })
        status["containerStatuses"] = statuses


def _deployment_status(deployment: Obj) -> Obj:
    replicas = int(deployment.get("spec", {}).get("replicas", 1) or 0)
    stamp = now()
    name = deployment["metadata"]["name"]
    return {
        "observedGeneration": deployment["metadata"].get("generation", 1),
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "True", "lastUpdateTime": stamp, "lastTransitionTime": stamp,
             "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
            {"type": "Progressing", "status": "True", "lastUpdateTime": stamp, "lastTransitionTime": stamp,
             "reason": "NewReplicaSetAvailable",
             "message": f'ReplicaSet "{name}-{uuid.uuid5(uuid.NAMESPACE_DNS, name).hex[:10]}" has successfully '
                        "progressed."},
        ],
    } if replicas else {"observedGeneration": deployment["metadata"].get("generation", 1)}


def decode_secret_value(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


# Field selectors each resource supports besides metadata.name and metadata.namespace.
FIELD_SELECTORS: dict[str, dict[str, Callable[[Obj], str]]] = {
    PODS.key: {
        "spec.nodeName": lambda o: str(o.get("spec", {}).get("nodeName", "")),
        "spec.restartPolicy": lambda o: str(o.get("spec", {}).get("restartPolicy", "")),
        "spec.schedulerName": lambda o: str(o.get("spec", {}).get("schedulerName", "")),
        "spec.serviceAccountName": lambda o: str(o.get("spec", {}).get("serviceAccountName", "")),
        "spec.hostNetwork": lambda o: str(bool(o.get("spec", {}).get("hostNetwork", False))).lower(),
        "status.phase": lambda o: str(o.get("status", {}).get("phase", "")),
        "status.podIP": lambda o: str(o.get("status", {}).get("podIP", "")),
        "status.nominatedNodeName": lambda o: str(o.get("status", {}).get("nominatedNodeName", "")),
    },
    SECRETS.key: {"type": lambda o: str(o.get("type", ""))},
    NAMESPACES.key: {"status.phase": lambda o: str(o.get("status", {}).get("phase", ""))},
    SERVICEACCOUNTS.key: {},
    CONFIGMAPS.key: {},
    DEPLOYMENTS.key: {},
}


def field_value(rt: ResourceType, obj: Obj, path: str) -> str | None:
    meta = obj.get("metadata", {})
    if path == "metadata.name":
        return str(meta.get("name", ""))
    if path == "metadata.namespace":
        return str(meta.get("namespace", ""))
    getter = FIELD_SELECTORS.get(rt.key, {}).get(path)
    return getter(obj) if getter else None


def supports_field(rt: ResourceType, path: str) -> bool:
    return path in ("metadata.name", "metadata.namespace") or path in FIELD_SELECTORS.get(rt.key, {})

"""What a Kubernetes API request does: its effects, each judged on its own (``judge``).

A request has one effect for itself (a verb on a resource, or on a non-resource path) and one more for
each dangerous thing its body asks of a pod (``PodFeature``: a privileged container, a hostPath volume,
the node's network or process namespace, a container runtime socket), wherever the pod spec sits: a
Pod, any workload's template, a CronJob's job template, a custom resource, a patch. A request Airlock
cannot read (a body it cannot decode, a path the API server would refuse) has one effect, ``unknown``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

READ_VERBS = frozenset({"get", "list", "watch"})
# Subresources that open a stream into a pod or node. The API server authorizes their WebSocket GET as
# ``create`` too (AuthorizePodWebsocketUpgradeCreatePermission, on by default since 1.31), so Airlock
# judges every method on them as ``create``: an allowance for ``get`` never lets a shell through.
CONNECT_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})
# Requests that read the API's own description: allowed unless a rule says otherwise.
DISCOVERY_PREFIXES = ("/openapi/v2", "/openapi/v3")
DISCOVERY_PATHS = frozenset({"/api", "/apis", "/version"})
# Cluster-scoped resources (built-in and common): a request for one without a namespace is not a request
# across every namespace. Any other resource asked for without a namespace is taken to span them all.
CLUSTER_SCOPED = frozenset({
    "namespaces", "nodes", "persistentvolumes", "componentstatuses", "mutatingwebhookconfigurations",
    "validatingwebhookconfigurations", "validatingadmissionpolicies", "validatingadmissionpolicybindings",
    "mutatingadmissionpolicies", "mutatingadmissionpolicybindings", "customresourcedefinitions", "apiservices",
    "tokenreviews", "selfsubjectreviews", "selfsubjectaccessreviews", "selfsubjectrulesreviews",
    "subjectaccessreviews", "certificatesigningrequests", "clusterroles", "clusterrolebindings",
    "priorityclasses", "storageclasses", "csidrivers", "csinodes", "volumeattachments", "runtimeclasses",
    "ingressclasses", "flowschemas", "prioritylevelconfigurations", "ipaddresses", "servicecidrs",
    "deviceclasses", "resourceslices", "clustertrustbundles", "storageversionmigrations", "volumeattributesclasses",
})  # fmt: skip
# Reviews a client makes of itself: they change nothing (``kubectl auth whoami``, ``auth can-i``).
SELF_REVIEWS = frozenset({"selfsubjectreviews", "selfsubjectaccessreviews", "selfsubjectrulesreviews"})


class PodFeature(StrEnum):
    """What a pod spec may ask that reaches past its container (a rule's ``pod_spec`` criterion)."""

    PRIVILEGED = "privileged"  # securityContext.privileged, or a Windows hostProcess container
    HOST_PATH = "host_path"  # a hostPath volume
    HOST_NETWORK = "host_network"
    HOST_PID = "host_pid"
    HOST_IPC = "host_ipc"
    NODE_SOCKET = "node_socket"  # a hostPath that is, or holds, a container runtime's or the kubelet's socket


@dataclass(frozen=True, slots=True)
class RequestEffect:
    """One thing a request does, as rules see it."""

    verb: str  # as judged: the request-info verb, ``create`` on connect subresources
    resource_request: bool
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # the path of a non-resource request
    # A namespaced resource asked for without a namespace: every namespace (list, watch, deletecollection).
    spans_namespaces: bool = False
    discovery: bool = False
    feature: PodFeature | None = None
    where: str = ""  # where in the body the feature is ("spec.template.spec.volumes[0].hostPath")
    unknown: str | None = None  # why the request could not be read (judged by the policy's unknown action)

    @property
    def changes(self) -> bool:
        """Whether the effect can change anything (what ``access: read_only`` refuses)."""
        if self.unknown is not None or self.feature is not None:
            return True
        if not self.resource_request:
            return self.verb not in ("get", "head")
        if self.verb == "create" and self.resource in SELF_REVIEWS and not self.subresource:
            return False
        return self.verb not in READ_VERBS

    @property
    def resource_path(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def describe(self) -> str:
        """For messages: ``delete deployments.apps "checkout" in namespace "prod"``."""
        if self.unknown is not None:
            return f"a request Airlock could not read ({self.unknown})"
        if not self.resource_request:
            return f"{self.verb} {self.path}"
        what = self.resource + (f".{self.group}" if self.group else "")
        if self.subresource:
            what += f"/{self.subresource}"
        text = f"{self.verb} {what}"
        if self.name:
            text += f' "{self.name}"'
        if self.namespace and not (self.resource == "namespaces" and not self.group):
            text += f' in namespace "{self.namespace}"'
        elif self.spans_namespaces:
            text += " in every namespace"
        if self.feature is not None:
            return f"{_FEATURES[self.feature]} ({self.where}) in {text}"
        return text


_FEATURES = {
    PodFeature.PRIVILEGED: "a privileged container",
    PodFeature.HOST_PATH: "a hostPath volume",
    PodFeature.HOST_NETWORK: "the node's network (hostNetwork)",
    PodFeature.HOST_PID: "the node's process namespace (hostPID)",
    PodFeature.HOST_IPC: "the node's IPC namespace (hostIPC)",
    PodFeature.NODE_SOCKET: "a mount of the node's container runtime socket",
}


def is_discovery(method: str, path: str) -> bool:
    """GET/HEAD of the API's description: ``/api``, ``/apis``, group and version lists, ``/version``,
    OpenAPI v2 and v3 (paths as request-info leaves them: non-resource)."""
    if method not in ("GET", "HEAD"):
        return False
    trimmed = "/" + path.strip("/")
    if trimmed in DISCOVERY_PATHS or trimmed.startswith(DISCOVERY_PREFIXES):
        return True
    parts = trimmed.strip("/").split("/")
    return (parts[0] == "api" and len(parts) == 2) or (parts[0] == "apis" and len(parts) in (2, 3))

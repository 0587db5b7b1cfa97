"""Pod features in a request body, wherever a pod spec sits.

Not a list of kinds and paths: a pod spec lives in a Pod, in every workload's ``spec.template``, in a
CronJob's ``spec.jobTemplate.spec.template``, in custom resources (Argo Rollouts, Knative, operators'
CRDs) and in patches of any of them. So the whole body is walked, and each feature is recognised by the
fields the Kubernetes API gives it, with the types it gives them (so a CRD's schema describing those fields
does not count): ``securityContext.privileged: true``, ``securityContext.windowsOptions.hostProcess:
true``, ``hostNetwork|hostPID|hostIPC: true``, a ``hostPath`` volume source (an object that is not a schema),
and, for node sockets, a hostPath whose path is a container runtime's or the kubelet's socket or a
directory holding one, or whose ``type`` is ``Socket``.

A JSON patch is turned into the objects its ``add``/``replace`` operations write (each value placed at
its path) and walked the same way; ``copy`` and ``move`` write values Airlock cannot see, so such a patch
cannot be judged. The walk is bounded (nodes and depth): a body past the bounds cannot be judged either.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any

from shared.k8s.effects import PodFeature

MAX_NODES = 500_000
MAX_DEPTH = 256
RUNTIME_SOCKETS = (
    "/var/run/docker.sock", "/run/docker.sock", "/var/run/containerd/containerd.sock",
    "/run/containerd/containerd.sock", "/var/run/crio/crio.sock", "/run/crio/crio.sock", "/var/run/cri-dockerd.sock",
    "/run/cri-dockerd.sock", "/var/run/dockershim.sock", "/run/k3s/containerd/containerd.sock",
    "/var/run/podman/podman.sock", "/run/podman/podman.sock", "/var/lib/kubelet/pod-resources/kubelet.sock",
    "/var/lib/kubelet/device-plugins/kubelet.sock",
)  # fmt: skip


class BodyUnjudgeable(ValueError):
    """The body cannot be judged (too deep or large to walk, a JSON patch that copies or moves)."""


def pod_features(body: Any) -> list[tuple[PodFeature, str]]:
    """Every pod feature the body asks for, with where it is (``spec.template.spec.hostNetwork``)."""
    found: list[tuple[PodFeature, str]] = []
    nodes = 0
    stack: list[tuple[Any, str, str, int]] = [(body, "", "", 0)]  # (value, its key, its location, depth)
    while stack:
        value, key, where, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES or depth > MAX_DEPTH:
            raise BodyUnjudgeable("the body is too large or too deeply nested to judge")
        if isinstance(value, dict):
            found.extend(_features_of(value, key, where))
            for k, v in value.items():
                if isinstance(v, dict | list):
                    stack.append((v, str(k), f"{where}.{k}" if where else str(k), depth + 1))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, dict | list):
                    stack.append((v, key, f"{where}[{i}]", depth + 1))
    found.sort(key=lambda f: (f[1], f[0].value))
    return found


def _features_of(obj: dict[Any, Any], key: str, where: str) -> Iterator[tuple[PodFeature, str]]:
    here = f"{where}." if where else ""
    if key == "securityContext":
        if obj.get("privileged") is True:
            yield PodFeature.PRIVILEGED, f"{here}privileged"
        windows = obj.get("windowsOptions")
        if isinstance(windows, dict) and windows.get("hostProcess") is True:
            yield PodFeature.PRIVILEGED, f"{here}windowsOptions.hostProcess"
    for field, feature in (("hostNetwork", PodFeature.HOST_NETWORK), ("hostPID", PodFeature.HOST_PID),
                           ("hostIPC", PodFeature.HOST_IPC)):  # fmt: skip
        if obj.get(field) is True:
            yield feature, f"{here}{field}"
    source = obj.get("hostPath")
    if isinstance(source, dict) and not isinstance(source.get("properties"), dict):
        yield PodFeature.HOST_PATH, f"{here}hostPath"
        if is_node_socket(source.get("path"), source.get("type")):
            yield PodFeature.NODE_SOCKET, f"{here}hostPath"


def is_node_socket(path: Any, kind: Any = None) -> bool:
    """Whether a hostPath exposes a node socket: the socket itself, a directory above one, or any socket."""
    if kind == "Socket":
        return True
    if not isinstance(path, str) or not path:
        return False
    normal = posixpath.normpath("/" + path.strip().lstrip("/"))
    if normal == "/":
        return True
    return any(socket == normal or socket.startswith(normal + "/") for socket in RUNTIME_SOCKETS)


def json_patch_values(operations: Any) -> list[Any]:
    """What a JSON patch's ``add``/``replace`` operations write, each value placed at its path (a list index
    becomes a one-item list), one object per operation. ``BodyUnjudgeable`` for ``copy``/``move`` or a
    malformed patch."""
    if not isinstance(operations, list):
        raise BodyUnjudgeable("a JSON patch is a list of operations")
    written: list[Any] = []
    for operation in operations:
        if not isinstance(operation, dict) or not isinstance(operation.get("op"), str):
            raise BodyUnjudgeable("a JSON patch operation needs an 'op'")
        op = operation["op"]
        if op in ("copy", "move"):
            raise BodyUnjudgeable(f"a JSON patch '{op}' writes values Airlock cannot see")
        if op not in ("add", "replace"):
            continue  # remove and test write nothing new
        path = operation.get("path")
        if not isinstance(path, str) or (path and not path.startswith("/")):
            raise BodyUnjudgeable("a JSON patch path must be a JSON pointer")
        built: Any = operation.get("value")
        for token in reversed(path.split("/")[1:] if path else []):
            token = token.replace("~1", "/").replace("~0", "~")
            built = [built] if token.isdigit() or token == "-" else {token: built}
        written.append(built)
    return written

"""``Table`` responses (meta.k8s.io/v1), with the columns the API server's printers give each kind.

kubectl's default output asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``; the server
renders the rows, so the columns (and ``-o wide``'s priority-1 columns) come from here. Rows carry the
object as PartialObjectMetadata unless ``includeObject=Object`` (or ``None``) says otherwise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from .kinds import CONFIGMAPS, DEPLOYMENTS, NAMESPACES, PODS, SECRETS, SERVICEACCOUNTS, ResourceType
from .status import bad_request

Obj = dict[str, Any]
Column = tuple[str, str, int, str]  # name, type, priority, description

_NAME: Column = ("Name", "string", 0, "Name must be unique within a namespace.")
_AGE: Column = ("Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this "
                "object was created.")


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    s = int(seconds)
    if s < 60 * 2:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24 % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(obj: Obj) -> str:
    stamp = obj.get("metadata", {}).get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    created = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return human_duration((dt.datetime.now(dt.UTC) - created).total_seconds())


def _pod_row(pod: Obj) -> list[Any]:
    spec, status = pod.get("spec", {}), pod.get("status", {})
    containers = spec.get("containers") or []
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    reason = status.get("reason") or status.get("phase") or "Pending"
    if pod.get("metadata", {}).get("deletionTimestamp"):
        reason = "Terminating"
    nominated = status.get("nominatedNodeName") or "<none>"
    gates = spec.get("readinessGates") or []
    return [pod["metadata"]["name"], f"{ready}/{len(containers)}", reason, str(restarts), age(pod),
            status.get("podIP") or "<none>", spec.get("nodeName") or "<none>", nominated,
            f"0/{len(gates)}" if gates else "<none>"]


def _deployment_row(deployment: Obj) -> list[Any]:
    spec, status = deployment.get("spec", {}), deployment.get("status", {})
    template = spec.get("template", {}).get("spec", {})
    containers = template.get("containers") or []
    selector = spec.get("selector", {}).get("matchLabels") or {}
    return [deployment["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            int(status.get("updatedReplicas", 0)), int(status.get("availableReplicas", 0)), age(deployment),
            ",".join(str(c.get("name")) for c in containers), ",".join(str(c.get("image")) for c in containers),
            ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"]


_PRINTERS: dict[str, tuple[list[Column], Callable[[Obj], list[Any]]]] = {
    PODS.key: ([
        _NAME,
        ("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
        ("Status", "string", 0, "The aggregate status of the containers in this pod."),
        ("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when "
         "the last container in this pod has restarted."),
        _AGE,
        ("IP", "string", 1, "podIP address allocated to the pod."),
        ("Node", "string", 1, "NodeName indicates in which node this pod is scheduled."),
        ("Nominated Node", "string", 1, "nominatedNodeName is set when this pod preempts other pods on the node."),
        ("Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
    ], _pod_row),
    DEPLOYMENTS.key: ([
        _NAME,
        ("Ready", "string", 0, "Number of the pod with ready state"),
        ("Up-to-date", "integer", 0, "Total number of non-terminated pods targeted by this deployment that have "
         "the desired template spec."),
        ("Available", "integer", 0, "Total number of available pods (ready for at least minReadySeconds) "
         "targeted by this deployment."),
        _AGE,
        ("Containers", "string", 1, "Names of each container in the template."),
        ("Images", "string", 1, "Images referenced by each container in the template."),
        ("Selector", "string", 1, "Label selector for pods."),
    ], _deployment_row),
    SECRETS.key: ([
        _NAME,
        ("Type", "string", 0, "Used to facilitate programmatic handling of secret data."),
        ("Data", "integer", 0, "Data contains the secret data."),
        _AGE,
    ], lambda o: [o["metadata"]["name"], o.get("type", ""), len(o.get("data") or {}), age(o)]),
    CONFIGMAPS.key: ([
        _NAME,
        ("Data", "integer", 0, "Data contains the configuration data."),
        _AGE,
    ], lambda o: [o["metadata"]["name"], len(o.get("data") or {}) + len(o.get("binaryData") or {}), age(o)]),
    NAMESPACES.key: ([
        _NAME,
        ("Status", "string", 0, "The status of the namespace"),
        _AGE,
    ], lambda o: [o["metadata"]["name"], o.get("status", {}).get("phase", ""), age(o)]),
    SERVICEACCOUNTS.key: ([
        _NAME,
        ("Secrets", "integer", 0, "Secrets is the list of secrets allowed to be used by pods running using this "
         "ServiceAccount"),
        _AGE,
    ], lambda o: [o["metadata"]["name"], len(o.get("secrets") or []), age(o)]),
}


# The API server's default table convertor, for kinds without a printer.
_DEFAULT: tuple[list[Column], Callable[[Obj], list[Any]]] = (
    [_NAME, ("Created At", "date", 0, "CreationTimestamp is a timestamp representing the server time when this "
             "object was created.")],
    lambda o: [o["metadata"].get("name", ""), o["metadata"].get("creationTimestamp")],
)


def _partial(obj: Obj, version: str) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{version}", "metadata": obj["metadata"]}


def to_table(rt: ResourceType, objects: list[Obj], list_meta: Obj, *, include_object: str, no_headers: bool,
             version: str = "v1") -> Obj:
    """A Table of ``objects``; ``no_headers`` leaves out the column definitions (later watch events)."""
    columns, row = _PRINTERS.get(rt.key, _DEFAULT)
    if include_object not in ("", "Metadata", "Object", "None"):
        raise bad_request(f'unrecognized includeObject value: "{include_object}"')
    rows = []
    for obj in objects:
        item: Obj = {"cells": row(obj)}
        if include_object == "Object":
            item["object"] = {"kind": rt.kind, "apiVersion": rt.api_version, **obj}
        elif include_object != "None":
            item["object"] = _partial(obj, version)
        rows.append(item)
    table: Obj = {"kind": "Table", "apiVersion": f"meta.k8s.io/{version}", "metadata": list_meta}
    if not no_headers:
        table["columnDefinitions"] = [
            {"name": name, "type": kind, "format": "name" if name == "Name" else "", "description": description,
             "priority": priority} for name, kind, priority, description in columns
        ]
    table["rows"] = rows
    return table

"""Discovery documents: /version, /api, /apis, /api/v1, /apis/<group>[/<version>], and aggregated discovery.

Aggregated discovery (apidiscovery.k8s.io v2 and v2beta1, same shape) answers ``/api`` and ``/apis`` when the
client asks for ``application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`` (kubectl 1.26+ does,
before the legacy ``application/json``); the response's Content-Type says which one it is, so a client
falls back to the legacy documents when it does not see it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .kinds import GROUP_VERSIONS, RESOURCE_TYPES, ResourceType, in_group_version
from .negotiation import parse_accept

Obj = dict[str, Any]

SERVER_VERSION = {
    "major": "1",
    "minor": "36",
    "emulationMajor": "1",
    "emulationMinor": "36",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "35",
    "gitVersion": "v1.36.0+airlock-standin",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
AGGREGATED_VERSIONS = ("v2", "v2beta1")


def _hash(rt: ResourceType) -> str:
    return hashlib.sha256(f"{rt.group}/{rt.version}/{rt.kind}".encode()).digest()[:8].hex()


def api_versions(server_address: str) -> Obj:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _api_group(group: str) -> Obj:
    versions = [{"groupVersion": f"{group}/{v}", "version": v} for g, v in GROUP_VERSIONS if g == group]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> Obj:
    groups = sorted({g for g, _ in GROUP_VERSIONS if g})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_api_group(g) for g in groups]}


def api_group(group: str) -> Obj | None:
    if not any(g == group for g, _ in GROUP_VERSIONS if g):
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(group)}


def api_resource_list(group: str, version: str) -> Obj | None:
    types = in_group_version(group, version)
    if not types:
        return None
    resources: list[Obj] = []
    for rt in types:
        entry: Obj = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                      "kind": rt.kind, "verbs": list(rt.verbs)}
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        entry["storageVersionHash"] = _hash(rt)
        resources.append(entry)
        for sub in rt.subresources:
            sub_entry: Obj = {"name": f"{rt.plural}/{sub.name}", "singularName": "", "namespaced": rt.namespaced}
            if sub.group != rt.group:
                sub_entry.update({"group": sub.group, "version": sub.version})
            sub_entry.update({"kind": sub.kind, "verbs": list(sub.verbs)})
            resources.append(sub_entry)
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def _aggregated_resource(rt: ResourceType) -> Obj:
    entry: Obj = {
        "resource": rt.plural,
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    if rt.subresources:
        entry["subresources"] = [
            {"subresource": s.name, "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
             "verbs": list(s.verbs)} for s in rt.subresources
        ]
    return entry


def aggregated(legacy_core: bool, version: str) -> Obj:
    """The APIGroupDiscoveryList for /api (core group only) or /apis (every named group)."""
    groups = [""] if legacy_core else sorted({g for g, _ in GROUP_VERSIONS if g})
    items = []
    for group in groups:
        versions = [
            {"version": v, "resources": [_aggregated_resource(rt) for rt in RESOURCE_TYPES
                                         if (rt.group, rt.version) == (group, v)], "freshness": "Current"}
            for g, v in GROUP_VERSIONS if g == group
        ]
        metadata: Obj = {"name": group} if group else {}
        metadata["creationTimestamp"] = None
        items.append({"metadata": metadata, "versions": versions})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}", "metadata": {},
            "items": items}


def aggregated_version(accept: str | None) -> str:
    """``v2``/``v2beta1`` when the client prefers aggregated discovery, else ``""``."""
    for media in parse_accept(accept):
        if media.type != "application/json":
            continue
        if media.param("g") == "apidiscovery.k8s.io" and media.param("as") == "APIGroupDiscoveryList":
            if media.param("v") in AGGREGATED_VERSIONS:
                return media.param("v")
            continue
        if not media.param("as"):
            return ""
    return ""


def aggregated_content_type(version: str) -> str:
    return f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"


def etag(body: Obj) -> str:
    return '"' + hashlib.sha512(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32].upper() + '"'

"""OpenAPI v2 (/openapi/v2) and v3 (/openapi/v3, /openapi/v3/<group-version>) documents from the schema.

Enough of the API server's documents for kubectl: definitions carry ``x-kubernetes-group-version-kind``
and the patch extensions (``x-kubernetes-patch-merge-key``/``-strategy``, list types), and every PATCH
operation lists the ``fieldValidation`` parameter, so kubectl validates on the server
(``fieldValidation=Strict``) instead of needing client-side schemas, and computes client-side apply's
strategic merge patch from these documents. Paths cover the served resources' collection and item
operations; v2 is also served as gnostic protobuf, which is what client-go asks for.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .discovery import SERVER_VERSION
from .kinds import GROUP_VERSIONS, ResourceType, in_group_version
from .schema import DEFINITIONS, META, Definition, Schema

Obj = dict[str, Any]

PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")
_QUERY = {
    "dryRun": "When present, indicates that modifications should not be persisted.",
    "fieldManager": "fieldManager is a name associated with the actor or entity that is making these changes.",
    "fieldValidation": "fieldValidation instructs the server on how to handle objects in the request containing "
                       "unknown or duplicate fields. Valid values are: Ignore, Warn (default), Strict.",
    "force": "Force is going to \"force\" Apply requests.",
    "pretty": "If 'true', then the output is pretty printed.",
}


def _ref(name: str, v3: bool) -> Obj:
    return {"$ref": f"#/components/schemas/{name}" if v3 else f"#/definitions/{name}"}


def render_schema(schema: Schema, v3: bool) -> Obj:
    body: Obj
    if schema.ref:
        body = _ref(schema.ref, v3)
        if not v3 and schema.description:
            body["description"] = schema.description
        return body
    if schema.type == "map":
        assert schema.items is not None
        body = {"type": "object", "additionalProperties": render_schema(schema.items, v3)}
    elif schema.type == "array":
        assert schema.items is not None
        body = {"type": "array", "items": render_schema(schema.items, v3)}
    else:
        body = {"type": schema.type}
    if schema.format:
        body["format"] = schema.format
    if schema.description:
        body["description"] = schema.description
    if schema.is_free and v3:
        body["x-kubernetes-preserve-unknown-fields"] = True
    if schema.list_type:
        body["x-kubernetes-list-type"] = schema.list_type
    if schema.list_type == "map":
        body["x-kubernetes-list-map-keys"] = list(schema.list_keys)
    if schema.merge_key:
        body["x-kubernetes-patch-merge-key"] = schema.merge_key
    if schema.patch_strategy:
        body["x-kubernetes-patch-strategy"] = schema.patch_strategy
    return body


def render_definition(definition: Definition, v3: bool) -> Obj:
    body: Obj = {"description": definition.description, "type": "object",
                 "properties": {k: render_schema(s, v3) for k, s in definition.properties.items()}}
    if definition.required:
        body["required"] = list(definition.required)
    if definition.gvk is not None:
        group, version, kind = definition.gvk
        body["x-kubernetes-group-version-kind"] = [{"group": group, "kind": kind, "version": version}]
    return body


def _operation_id(action: str, rt: ResourceType, namespaced: bool) -> str:
    group = "".join(p.capitalize() for p in (rt.group or "core").split("."))
    verb = {"get": "read", "put": "replace", "post": "create", "patch": "patch", "delete": "delete",
            "list": "list", "deletecollection": "deleteCollection"}[action]
    scope = "Namespaced" if namespaced and rt.namespaced else ""
    suffix = rt.kind
    if action == "list" and not namespaced and rt.namespaced:
        suffix = f"{rt.kind}ForAllNamespaces"
    return f"{verb}{group}{rt.version.capitalize()}{scope}{suffix}"


def _parameters(names: list[str], v3: bool) -> list[Obj]:
    params: list[Obj] = []
    for name in names:
        if v3:
            params.append({"name": name, "in": "query", "description": _QUERY[name],
                           "schema": {"type": "boolean" if name == "force" else "string", "uniqueItems": True}})
        else:
            params.append({"name": name, "in": "query", "description": _QUERY[name],
                           "type": "boolean" if name == "force" else "string", "uniqueItems": True})
    return params


def _path_parameter(name: str, v3: bool) -> Obj:
    description = "name of the resource" if name == "name" else "object name and auth scope, such as for teams " \
                                                                  "and projects"
    param: Obj
    if v3:
        param = {"name": name, "in": "path", "description": description, "required": True,
                 "schema": {"type": "string", "uniqueItems": True}}
    else:
        param = {"name": name, "in": "path", "description": description, "required": True, "type": "string",
                 "uniqueItems": True}
    return param


def _operation(action: str, rt: ResourceType, namespaced: bool, v3: bool) -> Obj:
    kind_ref = rt.definition
    response_ref = f"{rt.definition}List" if action == "list" else kind_ref
    op: Obj = {"description": f"{action} {rt.kind}", "operationId": _operation_id(action, rt, namespaced),
               "tags": [f"{(rt.group or 'core').split('.')[0]}_{rt.version}"]}
    query: list[str] = {"post": ["dryRun", "fieldManager", "fieldValidation", "pretty"],
                        "put": ["dryRun", "fieldManager", "fieldValidation", "pretty"],
                        "patch": ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"],
                        "delete": ["dryRun", "pretty"], "deletecollection": ["dryRun", "pretty"]}.get(action,
                                                                                                    ["pretty"])
    op["parameters"] = _parameters(query, v3)
    consumes = list(PATCH_TYPES) if action == "patch" else ["*/*"]
    produces = ["application/json", "application/yaml"]
    if action in ("post", "put", "patch"):
        body_ref = META + "Patch" if action == "patch" else kind_ref
        if v3:
            op["requestBody"] = {"content": {c: {"schema": _ref(body_ref, True)} for c in consumes}, "required": True}
        else:
            op["consumes"] = consumes
            op["parameters"].insert(0, {"name": "body", "in": "body", "required": True,
                                        "schema": _ref(body_ref, False)})
    code = "201" if action == "post" else "200"
    if v3:
        op["responses"] = {code: {"description": "OK", "content": {p: {"schema": _ref(response_ref, True)}
                                                                    for p in produces}}}
    else:
        op["produces"] = produces
        op["schemes"] = ["https"]
        op["responses"] = {code: {"description": "OK", "schema": _ref(response_ref, False)}}
    x_action = {"put": "put", "post": "post", "patch": "patch", "delete": "delete", "get": "get",
                "list": "list", "deletecollection": "deletecollection"}[action]
    op["x-kubernetes-action"] = x_action
    op["x-kubernetes-group-version-kind"] = {"group": rt.group, "kind": rt.kind, "version": rt.version}
    return op


def _paths(types: tuple[ResourceType, ...], v3: bool) -> Obj:
    paths: Obj = {}
    for rt in types:
        base = f"/api/{rt.version}" if not rt.group else f"/apis/{rt.group}/{rt.version}"
        if rt.review:
            paths[f"{base}/{rt.plural}"] = {"post": _operation("post", rt, False, v3)}
            continue
        scoped = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
        params = [_path_parameter("namespace", v3)] if rt.namespaced else []
        collection: Obj = {"get": _operation("list", rt, True, v3), "post": _operation("post", rt, True, v3)}
        if "deletecollection" in rt.verbs:
            collection["delete"] = _operation("deletecollection", rt, True, v3)
        if params:
            collection["parameters"] = params
        paths[scoped] = collection
        item: Obj = {verb: _operation(action, rt, True, v3)
                     for verb, action in (("get", "get"), ("put", "put"), ("patch", "patch"), ("delete", "delete"))}
        item["parameters"] = [_path_parameter("name", v3), *params]
        paths[f"{scoped}/{{name}}"] = item
        if rt.namespaced:
            paths[f"{base}/{rt.plural}"] = {"get": _operation("list", rt, False, v3)}
    return paths


def _definitions(v3: bool) -> Obj:
    definitions = {name: render_definition(d, v3) for name, d in sorted(DEFINITIONS.items())}
    definitions[META + "Patch"] = {"description": "Patch is provided to give a concrete name and type to the "
                                   "Kubernetes PATCH request body.", "type": "object"}
    return definitions


def _security(v3: bool) -> tuple[Obj, list[Obj]]:
    scheme: Obj = {"type": "apiKey", "name": "authorization", "in": "header",
                   "description": "Bearer Token authentication"}
    return {"BearerToken": scheme}, [{"BearerToken": []}]


def _info() -> Obj:
    return {"title": "Kubernetes (Airlock local stand-in)", "version": SERVER_VERSION["gitVersion"].split("+")[0]}


def v2_document() -> Obj:
    types = tuple(t for g, v in GROUP_VERSIONS for t in in_group_version(g, v))
    schemes, security = _security(False)
    return {"swagger": "2.0", "info": _info(), "paths": _paths(types, False), "definitions": _definitions(False),
            "securityDefinitions": schemes, "security": security}


def group_version_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def v3_document(group: str, version: str) -> Obj | None:
    types = in_group_version(group, version)
    if not types:
        return None
    schemes, security = _security(True)
    return {"openapi": "3.0.0", "info": _info(), "paths": _paths(types, True),
            "components": {"schemas": _definitions(True), "securitySchemes": schemes}, "security": security}


def v3_hash(group: str, version: str) -> str:
    document = v3_document(group, version)
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()[:128].upper()


def v3_index() -> Obj:
    paths = {}
    for group, version in GROUP_VERSIONS:
        path = group_version_path(group, version)
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={v3_hash(group, version)}"}
    return {"paths": paths}

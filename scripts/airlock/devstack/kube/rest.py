"""Resource requests over HTTP: from a parsed request-info to a :class:`~.cluster.Cluster` call and back.

Reads the body (JSON or YAML, at most 3 MiB, duplicate fields noted), the query (``dryRun``,
``fieldManager``, ``fieldValidation``, ``force``, selectors, paging), picks the response representation
(:mod:`.negotiation`) and encodes the result: JSON, YAML, Table or PartialObjectMetadata. Watches, logs and
exec hand over to their own modules.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from aiohttp import web

from shared.k8s.protobuf import ProtobufError, decode_object

from . import exec_spdy, exec_ws, logs
from .auth import Authenticator, Identity, review
from .cluster import APPLY_PATCH, PATCH_TYPES, Cluster, WriteOptions
from .containers import ContainerProcess, container_env
from .kinds import CONFIGMAPS, PODS, SECRETS, SERVICEACCOUNTS, ResourceType, lookup
from .negotiation import JSON, PROTOBUF, YAML, Representation, body_media_type, negotiate
from .remotecommand import STREAM_PROTOCOLS, ExecOptions, exec_options, pick_container, split_header
from .remotecommand import negotiate as negotiate_stream
from .requestinfo import RequestInfo
from .selectors import SelectorError, parse_field_selector, parse_label_selector
from .status import (
    ApiError,
    bad_request,
    method_not_allowed,
    not_acceptable,
    resource_not_found,
    too_large,
    unsupported_media_type,
)
from .strategies import decode_secret_value, supports_field
from .tables import to_table
from .watch import WatchStream, watch_request

Obj = dict[str, Any]
MAX_BODY = 3 * 1024 * 1024
_TRUE = ("1", "true", "True", "TRUE", "t", "T")
BODY_TYPES = [JSON, YAML, PROTOBUF]


def encode(obj: Obj, representation: Representation, status: int = 200,
           warnings: list[str] | None = None) -> web.Response:
    if representation.media_type == YAML:
        body = yaml.safe_dump(obj, sort_keys=False).encode()
    else:
        body = json.dumps(obj, separators=(",", ":")).encode()
    response = web.Response(body=body, status=status, headers={"Content-Type": representation.content_type})
    for warning in warnings or []:
        response.headers.add("Warning", '299 - "' + warning.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return response


def status_response(error: ApiError) -> web.Response:
    return web.Response(body=json.dumps(error.status, separators=(",", ":")).encode(), status=error.code,
                        headers={"Content-Type": JSON})


class ResourceHandler:
    def __init__(self, cluster: Cluster, authenticator: Authenticator, bookmark_interval: float) -> None:
        self.cluster = cluster
        self.authenticator = authenticator
        self.bookmark_interval = bookmark_interval

    async def handle(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        rt = lookup(info.group, info.version, info.resource)
        if rt is None or info.rest:
            raise resource_not_found()
        if not rt.namespaced and info.namespace and info.resource != "namespaces":
            raise resource_not_found()
        namespace = info.namespace if rt.namespaced else ""
        if info.subresource:
            return await self._subresource(request, info, rt, namespace)
        if info.verb not in rt.verbs:
            raise method_not_allowed()
        if rt.namespaced and not namespace and info.verb not in ("list", "watch"):
            if info.verb in ("create", "deletecollection"):
                raise method_not_allowed()
            raise resource_not_found()
        name = "" if info.name_from_selector else info.name
        if info.verb in ("list", "watch") or (info.verb == "get" and not name):
            return await self._collection_read(request, info, rt, namespace)
        if info.verb in ("create", "update", "patch") and (info.verb == "create") == bool(name):
            raise method_not_allowed()  # POST to an item, PUT or PATCH to a collection
        representation = negotiate(request.headers.get("Accept"))
        query = request.query
        dry_run = _dry_run(query)
        if rt.review:
            identity: Identity = request["airlock_identity"]
            answer = review(rt.kind, await self._object_body(request), identity.effective, self.authenticator)
            return encode(answer, Representation(representation.media_type), 201)
        if info.verb == "get":
            return self._encode_one(rt, self.cluster.get(rt, namespace, name), representation, request)
        if info.verb == "create":
            options = await self._write_options(request, dry_run)
            body = await self._object_body(request)
            created = self.cluster.create(rt, namespace, body, options)
            return self._encode_one(rt, created, representation, request, 201, options.warnings)
        if info.verb == "update":
            options = await self._write_options(request, dry_run)
            body = await self._object_body(request)
            updated = self.cluster.update(rt, namespace, name, body, options)
            return self._encode_one(rt, updated, representation, request, 200, options.warnings)
        if info.verb == "patch":
            patch_type = body_media_type(request.headers.get("Content-Type"))
            if patch_type not in PATCH_TYPES:
                raise unsupported_media_type(list(PATCH_TYPES))
            options = await self._write_options(request, dry_run, force=query.get("force", "") in _TRUE)
            patched, was_created = self.cluster.patch(rt, namespace, name, patch_type, await _read(request),
                                                      options)
            return self._encode_one(rt, patched, representation, request, 201 if was_created else 200,
                                    options.warnings)
        if info.verb == "delete":
            delete_options = await self._delete_options(request)
            dry_run = dry_run or _dry_run_list(delete_options.get("dryRun"))
            result = self.cluster.delete(rt, namespace, name, delete_options.get("preconditions") or {}, dry_run)
            if result.get("kind") == "Status":
                return encode(result, Representation(representation.media_type))
            return self._encode_one(rt, result, representation, request)
        if info.verb == "deletecollection":
            delete_options = await self._delete_options(request)
            labels, fields = self._selectors(rt, query)
            result = self.cluster.delete_collection(rt, namespace, labels, fields,
                                                    dry_run or _dry_run_list(delete_options.get("dryRun")))
            return encode(result, Representation(representation.media_type))
        raise method_not_allowed()

    # ------------------------------------------------------------------ reads

    def _selectors(self, rt: ResourceType, query: Any) -> tuple[Any, Any]:
        try:
            labels = parse_label_selector(query.get("labelSelector"))
            fields = parse_field_selector(query.get("fieldSelector"), lambda f: supports_field(rt, f))
        except SelectorError as e:
            raise bad_request(str(e)) from e
        return labels, fields

    async def _collection_read(self, request: web.Request, info: RequestInfo, rt: ResourceType,
                               namespace: str) -> web.StreamResponse:
        query = request.query
        labels, fields = self._selectors(rt, query)
        if info.name and not info.name_from_selector:  # /watch/namespaces/ns/pods/name
            fields = parse_field_selector(f"metadata.name={info.name}", lambda f: True)
        representation = negotiate(request.headers.get("Accept"))
        if info.verb == "watch" or query.get("watch", "") in _TRUE:
            if representation.media_type == YAML:
                raise not_acceptable([JSON])
            matches = self.cluster.matches(rt, labels, fields)
            stream = WatchStream(self.cluster.store, watch_request(rt, namespace, query, matches, representation),
                                 self.bookmark_interval)
            return await stream.serve(request)
        try:
            limit = int(query.get("limit", "0") or 0)
        except ValueError as e:
            raise bad_request(f'invalid value "{query.get("limit")}" for limit') from e
        result = self.cluster.list(rt, namespace, labels, fields, limit, query.get("continue", ""))
        if representation.convert == "Table":
            items = [{**i, "kind": rt.kind, "apiVersion": rt.api_version} for i in result["items"]]
            table = to_table(rt, items, result["metadata"], include_object=query.get("includeObject", ""),
                             no_headers=False, version=representation.version)
            return encode(table, representation)
        if representation.convert == "PartialObjectMetadataList":
            return encode({"kind": "PartialObjectMetadataList", "apiVersion": f"meta.k8s.io/{representation.version}",
                           "metadata": result["metadata"],
                           "items": [{"kind": "PartialObjectMetadata", "apiVersion":
                                      f"meta.k8s.io/{representation.version}", "metadata": i["metadata"]}
                                     for i in result["items"]]}, representation)
        if representation.convert:
            raise not_acceptable([JSON, YAML])
        return encode(result, representation)

    def _encode_one(self, rt: ResourceType, obj: Obj, representation: Representation, request: web.Request,
                    status: int = 200, warnings: list[str] | None = None) -> web.Response:
        if representation.convert == "Table":
            table = to_table(rt, [obj], {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                             include_object=request.query.get("includeObject", ""), no_headers=False,
                             version=representation.version)
            return encode(table, representation, status, warnings)
        if representation.convert == "PartialObjectMetadata":
            partial = {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{representation.version}",
                       "metadata": obj["metadata"]}
            return encode(partial, representation, status, warnings)
        if representation.convert:
            raise not_acceptable([JSON, YAML])
        return encode(obj, representation, status, warnings)

    # ------------------------------------------------------------------ bodies

    async def _write_options(self, request: web.Request, dry_run: bool, *, force: bool = False) -> WriteOptions:
        query = request.query
        validation = query.get("fieldValidation", "") or "Warn"
        if validation not in ("Ignore", "Warn", "Strict"):
            raise bad_request(f"fieldValidation: Unsupported value: \"{validation}\": supported values: "
                              '"Ignore", "Strict", "Warn"')
        manager = query.get("fieldManager", "")
        if not manager and body_media_type(request.headers.get("Content-Type")) != APPLY_PATCH:
            manager = request.headers.get("User-Agent", "").split("/", 1)[0][:128] or "unknown"
        duplicates: tuple[str, ...] = ()
        if request.method in ("POST", "PUT") and body_media_type(request.headers.get("Content-Type")) in ("", JSON):
            duplicates = _duplicates(await _read(request))
        return WriteOptions(dry_run=dry_run, manager=manager, force=force, field_validation=validation,
                            duplicates=duplicates)

    async def _object_body(self, request: web.Request) -> Obj:
        media = body_media_type(request.headers.get("Content-Type")) or JSON
        if media not in BODY_TYPES:
            raise unsupported_media_type(BODY_TYPES)
        raw = await _read(request)
        if not raw.strip():
            raise bad_request("the body of the request was empty")
        if media == PROTOBUF:
            try:
                return decode_object(raw)
            except ProtobufError as e:
                raise ApiError(415, "UnsupportedMediaType", f"the protobuf body cannot be decoded by the Kubernetes "
                               f"stand-in ({e}); send application/json") from e
        try:
            body = yaml.safe_load(raw.decode()) if media == YAML else json.loads(raw)
        except (ValueError, yaml.YAMLError) as e:
            raise bad_request(f"couldn't get version/kind; json parse error: {e}") from e
        if not isinstance(body, dict):
            raise bad_request("couldn't get version/kind; json parse error: the body is not an object")
        return body

    async def _delete_options(self, request: web.Request) -> Obj:
        raw = await _read(request)
        options: Obj = {}
        if raw.strip():
            try:
                if body_media_type(request.headers.get("Content-Type")) == PROTOBUF:
                    parsed = decode_object(raw)
                else:
                    parsed = json.loads(raw)
            except (ValueError, ProtobufError) as e:
                raise bad_request(f"couldn't decode DeleteOptions: {e}") from e
            if isinstance(parsed, dict):
                options = parsed
        policy = request.query.get("propagationPolicy") or options.get("propagationPolicy")
        if policy and policy not in ("Orphan", "Background", "Foreground"):
            raise ApiError(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: '
                           f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"')
        return options

    # ------------------------------------------------------------------ subresources

    async def _subresource(self, request: web.Request, info: RequestInfo, rt: ResourceType,
                           namespace: str) -> web.StreamResponse:
        sub = rt.subresource(info.subresource)
        if sub is None or not info.name or not namespace:
            raise resource_not_found()
        if info.verb not in sub.verbs:
            raise method_not_allowed()
        if rt is PODS and sub.name == "log":
            pod = self.cluster.get(PODS, namespace, info.name)
            container = pick_container(pod, request.query.get("container", ""))
            uid = pod["metadata"]["uid"]

            def alive() -> bool:
                current = self.cluster.store.get(PODS, namespace, info.name)
                return current is not None and current["metadata"]["uid"] == uid

            return await logs.serve(request, info.name, container,
                                    self.cluster.containers.log_path(namespace, info.name, container), alive)
        if rt is PODS and sub.name == "exec":
            return await self._exec(request, namespace, info.name)
        if rt is SERVICEACCOUNTS and sub.name == "token":
            representation = negotiate(request.headers.get("Accept"))
            body = await self._object_body(request)
            token = self.cluster.create_token(namespace, info.name, body, _dry_run(request.query))
            return encode(token, Representation(representation.media_type), 201)
        raise resource_not_found()

    async def _exec(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        pod = self.cluster.get(PODS, namespace, name)
        options = exec_options(request.query, pod)
        upgrade = request.headers.get("Upgrade", "").lower()
        connection = request.headers.get("Connection", "").lower()

        async def launch(opts: ExecOptions, size: tuple[int, int] | None) -> ContainerProcess:
            current = self.cluster.get(PODS, namespace, name)
            container = next(c for c in current["spec"]["containers"] if c.get("name") == opts.container)
            env = container_env(container, lambda kind, ref, key: self._env_value(namespace, kind, ref, key))
            env["HOSTNAME"] = name
            env["KUBE_STANDIN_LOG"] = str(self.cluster.containers.log_path(namespace, name, opts.container))
            workdir = self.cluster.containers.workdir(namespace, name, opts.container)
            workdir.mkdir(parents=True, exist_ok=True)
            return await ContainerProcess.start(list(opts.command), workdir, env, tty=opts.tty, stdin=opts.stdin,
                                                size=size)

        if upgrade == "websocket":
            offered = split_header(request.headers.getall("Sec-WebSocket-Protocol", []))
            if not negotiate_stream(offered):
                raise _upgrade_refused(offered)
            return await exec_ws.serve(request, options, launch)
        if "spdy/3.1" in upgrade and "upgrade" in connection:
            offered = split_header(request.headers.getall("X-Stream-Protocol-Version", []))
            protocol = negotiate_stream(offered)
            if not protocol:
                raise _upgrade_refused(offered)
            return await exec_spdy.SpdyExecSession(request, options, protocol, launch).run()
        raise bad_request("Upgrade request required")

    def _env_value(self, namespace: str, kind: str, name: str, key: str) -> str | None:
        rt = SECRETS if kind == "Secret" else CONFIGMAPS
        obj = self.cluster.store.get(rt, namespace, name)
        if obj is None:
            return None
        value = (obj.get("data") or {}).get(key)
        if value is None:
            return None
        if rt is SECRETS:
            decoded = decode_secret_value(str(value))
            return decoded.decode(errors="replace") if decoded is not None else None
        return str(value)


def _upgrade_refused(offered: list[str]) -> ApiError:
    return ApiError(403, "Forbidden", f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                    f"server accepts {list(STREAM_PROTOCOLS)}")


async def _read(request: web.Request) -> bytes:
    cached = request.get("airlock_body")
    if isinstance(cached, bytes):
        return cached
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise too_large()
    body = bytearray()
    while chunk := await request.content.read(65536):  # read() returns what has arrived: loop to EOF
        body += chunk
        if len(body) > MAX_BODY:
            raise too_large()
    raw = bytes(body)
    request["airlock_body"] = raw
    return raw


def _dry_run(query: Any) -> bool:
    return _dry_run_list(query.getall("dryRun", []))


def _dry_run_list(values: Any) -> bool:
    if not values:
        return False
    values = [values] if isinstance(values, str) else list(values)
    for value in values:
        if value != "All":
            raise bad_request(f'Invalid dryRun value: "{value}" (supported values: "All")')
    return True


def _duplicates(raw: bytes) -> tuple[str, ...]:
    found: list[str] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                found.append(key)
            seen.add(key)
        return dict(pairs)

    try:
        json.loads(raw, object_pairs_hook=hook)
    except ValueError:
        return ()
    return tuple(found)

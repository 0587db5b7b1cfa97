"""The stand-in's API semantics, free of HTTP: create, update, patch, apply, delete, list, get, tokens.

Each write runs as the API server's generic registry runs it: decode-level checks (kind, name and namespace
agree with the URL), server-set metadata and defaults (:mod:`.strategies`), validation (422), preconditions
(resourceVersion, uid: 409), managedFields (:mod:`.apply`), then the store commits it and the change is
watchable, unless ``dryRun``. An update that changes nothing is not written (the resourceVersion stays).
Side effects of the missing controllers happen here: a pod gets its container directories, a namespace
its ``default`` ServiceAccount and ``kube-root-ca.crt``, a deleted namespace takes its contents along.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from .apply import ApplyConflict, conflict_message, record_update, server_side_apply
from .auth import SERVICE_ACCOUNT_ISSUER, ServiceAccountTokens
from .containers import ContainerRoots
from .kinds import CONFIGMAPS, NAMESPACES, PODS, RESOURCE_TYPES, SECRETS, SERVICEACCOUNTS, ResourceType, by_kind
from .patch import PatchError, as_api_error, json_patch, merge_patch, strategic_merge
from .schema import definition_for, prune, unknown_fields
from .selectors import FieldSelector, LabelSelector
from .status import (
    ApiError,
    Cause,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    invalid,
    modified_conflict,
    not_found,
    success_status,
)
from .store import Store
from .strategies import Lifecycle, field_value, now, validate

Obj = dict[str, Any]
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)


@dataclass(frozen=True, slots=True)
class WriteOptions:
    """``field_validation``: Strict, Warn (the default) or Ignore; ``warnings`` collects what Warn reports;
    ``duplicates`` are fields the request body named twice (found while parsing it)."""

    dry_run: bool = False
    manager: str = ""
    force: bool = False
    field_validation: str = "Warn"
    duplicates: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)


@dataclass
class Cluster:
    store: Store
    containers: ContainerRoots
    tokens: ServiceAccountTokens
    ca_pem: str = ""
    lifecycle: Lifecycle = field(default_factory=Lifecycle)

    # ------------------------------------------------------------------ reads

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        return self.store.require(rt, namespace, name)

    def select(self, rt: ResourceType, namespace: str, labels: LabelSelector, fields: FieldSelector) -> list[Obj]:
        return [obj for obj in self.store.objects(rt, namespace) if self.matches(rt, labels, fields)(obj)]

    @staticmethod
    def matches(rt: ResourceType, labels: LabelSelector, fields: FieldSelector) -> Callable[[Obj], bool]:
        def check(obj: Obj) -> bool:
            return labels.matches(obj.get("metadata", {}).get("labels")) and fields.matches(
                lambda path: field_value(rt, obj, path))
        return check

    def list(self, rt: ResourceType, namespace: str, labels: LabelSelector, fields: FieldSelector,
             limit: int = 0, token: str = "") -> Obj:
        """A <Kind>List; ``limit``/``token`` page it (pages read the current state, not a snapshot)."""
        revision = self.store.revision
        items = self.select(rt, namespace, labels, fields)
        meta: Obj = {"resourceVersion": str(revision)}
        if token:
            start = _decode_continue(token)
            items = [o for o in items if _sort_key(o) > start]
        if limit and len(items) > limit:
            meta["continue"] = _encode_continue(revision, _sort_key(items[limit - 1]))
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        for item in items:
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta, "items": items}

    # ------------------------------------------------------------------ writes

    def create(self, rt: ResourceType, namespace: str, body: Obj, options: WriteOptions) -> Obj:
        obj = self._decoded(rt, namespace, body, options)
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = str(meta["generateName"]) + "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
        if rt.namespaced:
            self._require_namespace(namespace)
        self.lifecycle.prepare_create(rt, obj)
        self._validate(rt, obj, None)
        record_update(None, obj, options.manager, rt.api_version, definition_for(rt.api_version, rt.kind))
        return self._store_create(rt, obj, options)

    def _store_create(self, rt: ResourceType, obj: Obj, options: WriteOptions) -> Obj:
        meta = obj["metadata"]
        if self.store.get(rt, str(meta.get("namespace", "")), meta["name"]) is not None:
            raise already_exists(rt, meta["name"])
        if options.dry_run:
            return obj
        created = self.store.create(rt, obj)
        self._after_create(rt, created)
        return created

    def update(self, rt: ResourceType, namespace: str, name: str, body: Obj, options: WriteOptions) -> Obj:
        old = self.store.require(rt, namespace, name)
        obj = self._decoded(rt, namespace, body, options)
        if obj["metadata"].get("name") != name:
            raise bad_request(f"the name of the object ({obj['metadata'].get('name', '')}) does not match the name "
                              f"on the URL ({name})")
        return self._update(rt, old, obj, options)

    def _update(self, rt: ResourceType, old: Obj, obj: Obj, options: WriteOptions, *, apply: bool = False) -> Obj:
        name = old["metadata"]["name"]
        wanted = obj["metadata"].get("resourceVersion")
        if wanted and wanted != old["metadata"].get("resourceVersion"):
            raise modified_conflict(rt, name)
        wanted_uid = obj["metadata"].get("uid")
        if wanted_uid and wanted_uid != old["metadata"].get("uid"):
            raise conflict(rt, name, f"Precondition failed: UID in precondition: {wanted_uid}, UID in object meta: "
                           f"{old['metadata'].get('uid')}")
        self.lifecycle.prepare_update(rt, obj, old)
        self._validate(rt, obj, old)
        if not apply:
            record_update(old, obj, options.manager, rt.api_version, definition_for(rt.api_version, rt.kind))
        if _same(old, obj):
            return old
        if options.dry_run:
            obj["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
            return obj
        return self.store.update(rt, obj)

    def patch(self, rt: ResourceType, namespace: str, name: str, patch_type: str, raw: bytes,
              options: WriteOptions) -> tuple[Obj, bool]:
        """(object, created): apply patches may create; every other patch needs the object."""
        if patch_type == APPLY_PATCH:
            return self._apply(rt, namespace, name, raw, options)
        try:
            document = json.loads(raw or b"null")
        except ValueError as e:
            raise bad_request(f"error decoding patch: {e}") from e
        old = self.store.require(rt, namespace, name)
        try:
            if patch_type == JSON_PATCH:
                patched = json_patch(copy.deepcopy(old), document)
            elif patch_type == MERGE_PATCH:
                if not isinstance(document, dict):
                    raise PatchError("json: cannot unmarshal into the object: the patch must be a JSON object", 400)
                patched = merge_patch(old, document)
            else:
                patched = strategic_merge(old, document, definition_for(rt.api_version, rt.kind))
        except PatchError as e:
            raise as_api_error(e) from e
        if not isinstance(patched.get("metadata"), dict):
            raise bad_request("metadata: the patched object has no metadata")
        if patched["metadata"].get("name") != name:
            raise bad_request(f"the name of the object ({patched['metadata'].get('name')}) does not match the name "
                              f"on the URL ({name})")
        obj = self._decoded(rt, namespace, patched, options)
        return self._update(rt, old, obj, options), False

    def _apply(self, rt: ResourceType, namespace: str, name: str, raw: bytes,
               options: WriteOptions) -> tuple[Obj, bool]:
        if not options.manager:
            raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                           "is required for apply patch", {"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [
                               Cause("FieldValueRequired", "Required value: is required for apply patch",
                                     "fieldManager").to_json()]})
        try:
            applied = yaml.safe_load(raw.decode() if raw else "")
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise bad_request(f"error decoding YAML: {e}") from e
        if not isinstance(applied, dict):
            raise bad_request("the apply configuration must be an object")
        applied = self._decoded(rt, namespace, applied, options, apply=True)
        if applied["metadata"].get("name") != name:
            raise bad_request(f"the name of the object ({applied['metadata'].get('name', '')}) does not match the "
                              f"name on the URL ({name})")
        if applied["metadata"].get("managedFields"):
            raise bad_request("metadata.managedFields must be nil")
        definition = definition_for(rt.api_version, rt.kind)
        old = self.store.get(rt, namespace if rt.namespaced else "", name)
        try:
            result = server_side_apply(old, applied, options.manager, rt.api_version, options.force, definition)
        except ApplyConflict as e:
            causes = [Cause("FieldManagerConflict", f'conflict with "{c.manager}" using {c.api_version}', c.path)
                      for c in e.conflicts]
            raise conflict(rt, name, conflict_message(e.conflicts), causes) from e
        if old is None:
            if rt.namespaced:
                self._require_namespace(namespace)
            managed = result["metadata"].get("managedFields")
            self.lifecycle.prepare_create(rt, result)
            result["metadata"]["managedFields"] = managed
            self._validate(rt, result, None)
            return self._store_create(rt, result, options), True
        return self._update(rt, old, result, options, apply=True), False

    def delete(self, rt: ResourceType, namespace: str, name: str, preconditions: Obj, dry_run: bool) -> Obj:
        """What the API server answers a DELETE with: the object (pods, namespaces) or a Success Status."""
        old = self.store.require(rt, namespace, name)
        meta = old["metadata"]
        if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
            raise conflict(rt, name, f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in object "
                           f"meta: {meta.get('uid')}")
        if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta.get("resourceVersion"):
            raise conflict(rt, name, f"Precondition failed: ResourceVersion in precondition: "
                           f"{preconditions['resourceVersion']}, ResourceVersion in object meta: "
                           f"{meta.get('resourceVersion')}")
        if rt is NAMESPACES and name in PROTECTED_NAMESPACES:
            raise forbidden("namespaces", name, "this namespace may not be deleted")
        if rt in (PODS, NAMESPACES):
            terminating = copy.deepcopy(old)
            terminating["metadata"]["deletionTimestamp"] = now()
            if rt is PODS:
                grace = int(old.get("spec", {}).get("terminationGracePeriodSeconds", 30))
                terminating["metadata"]["deletionGracePeriodSeconds"] = grace
            else:
                terminating["status"] = {"phase": "Terminating"}
            if dry_run:
                return terminating
            terminating = self.store.update(rt, terminating)
            if rt is NAMESPACES:
                self._empty_namespace(name)
            self.store.delete(rt, namespace, name)
            if rt is PODS:
                self.containers.remove(namespace, name)
            return terminating
        if not dry_run:
            self.store.delete(rt, namespace, name)
        details: Obj = {"name": name}
        if rt.group:
            details["group"] = rt.group
        details.update({"kind": rt.plural, "uid": meta.get("uid")})
        return success_status(details)

    def delete_collection(self, rt: ResourceType, namespace: str, labels: LabelSelector, fields: FieldSelector,
                          dry_run: bool) -> Obj:
        deleted = []
        for obj in self.select(rt, namespace, labels, fields):
            meta = obj["metadata"]
            self.delete(rt, str(meta.get("namespace", "")), meta["name"], {}, dry_run)
            obj.pop("kind", None)
            obj.pop("apiVersion", None)
            deleted.append(obj)
        return {"kind": rt.list_kind, "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(self.store.revision)}, "items": deleted}

    def create_token(self, namespace: str, name: str, body: Obj, dry_run: bool) -> Obj:
        """serviceaccounts/<name>/token: a TokenRequest answered with a signed token."""
        account = self.store.require(SERVICEACCOUNTS, namespace, name)
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        seconds = spec.get("expirationSeconds", 3600)
        audiences = spec.get("audiences") or [SERVICE_ACCOUNT_ISSUER]
        if not isinstance(seconds, int) or seconds < 600:
            raise ApiError(422, "Invalid", f'TokenRequest.authentication.k8s.io "{name}" is invalid: '
                           f"spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less than "
                           "10 minutes", {"name": name, "group": "authentication.k8s.io", "kind": "TokenRequest",
                                          "causes": [Cause("FieldValueInvalid", f"Invalid value: {seconds}: may not "
                                                           "specify a duration less than 10 minutes",
                                                           "spec.expirationSeconds").to_json()]})
        token, expires = ("", now()) if dry_run else self.tokens.issue(
            namespace, name, str(account["metadata"]["uid"]), list(audiences), seconds)
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": {"audiences": list(audiences), "expirationSeconds": seconds,
                     "boundObjectRef": spec.get("boundObjectRef")},
            "status": {"token": token, "expirationTimestamp": expires},
        }

    def account_uid(self, namespace: str, name: str) -> str | None:
        account = self.store.get(SERVICEACCOUNTS, namespace, name)
        return str(account["metadata"]["uid"]) if account else None

    # ------------------------------------------------------------------ helpers

    def _decoded(self, rt: ResourceType, namespace: str, body: Obj, options: WriteOptions, *,
                 apply: bool = False) -> Obj:
        """Check a body against the URL, as decoding into the endpoint's type does; fill kind/apiVersion;
        unknown and duplicate fields are refused (Strict), reported and dropped (Warn) or dropped (Ignore)."""
        obj = copy.deepcopy(body)
        self._check_fields(rt, obj, options, apply)
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if (api_version or kind) and by_kind(str(api_version), str(kind)) is not rt:
            if kind == rt.kind and api_version != rt.api_version:
                raise bad_request(f"the API version in the data ({api_version}) does not match the expected API "
                                  f"version ({rt.api_version})")
            raise bad_request(f"the object provided is unrecognized (must be of type {rt.kind}): "
                              f"{kind} in version {api_version!r} is not {rt.kind}")
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise bad_request(f"{rt.kind} in version \"{rt.version}\" cannot be handled as a {rt.kind}: metadata "
                              "must be an object")
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                                  "request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if rt is SECRETS:
            for key, value in (obj.get("data") or {}).items():
                try:
                    base64.b64decode(str(value), validate=True)
                except ValueError as e:
                    raise bad_request(f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data in '
                                      f'"data[{key}]": {e}') from e
        return obj

    @staticmethod
    def _check_fields(rt: ResourceType, obj: Obj, options: WriteOptions, apply: bool) -> None:
        unknown = unknown_fields(definition_for(rt.api_version, rt.kind), obj)
        if apply and unknown and options.field_validation != "Ignore":
            raise bad_request(f"failed to create typed patch object ({rt.group}/{rt.version}, Kind={rt.kind}): "
                              + ", ".join(f".{path}: field not declared in schema" for path in unknown))
        problems = [f'unknown field "{path}"' for path in unknown]
        problems += [f'duplicate field "{name}"' for name in options.duplicates]
        if problems and options.field_validation == "Strict":
            raise bad_request(f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: strict '
                              f"decoding error: {', '.join(problems)}")
        if options.field_validation == "Warn":
            options.warnings.extend(problems)
        for path in unknown:
            prune(obj, path)

    def _validate(self, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        causes = validate(rt, obj, old)
        if causes:
            raise invalid(rt, str(obj["metadata"].get("name", "")), causes)

    def _require_namespace(self, namespace: str) -> None:
        if self.store.get(NAMESPACES, "", namespace) is None:
            raise not_found(NAMESPACES, namespace)

    def _after_create(self, rt: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        if rt is PODS:
            names = [str(c.get("name")) for c in obj.get("spec", {}).get("containers") or []]
            self.containers.create(str(meta["namespace"]), meta["name"], names)
        elif rt is NAMESPACES:
            name = meta["name"]
            root_ca: Obj = {"metadata": {"name": "kube-root-ca.crt", "annotations": {
                "kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver "
                "when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other "
                "usage is guaranteed across distributions of Kubernetes clusters."}}, "data": {"ca.crt": self.ca_pem}}
            children: list[tuple[ResourceType, Obj]] = [(SERVICEACCOUNTS, {"metadata": {"name": "default"}}),
                                                        (CONFIGMAPS, root_ca)]
            for child_rt, child in children:
                if self.store.get(child_rt, name, child["metadata"]["name"]) is None:
                    self.create(child_rt, name, child, WriteOptions(manager="kube-controller-manager"))

    def _empty_namespace(self, namespace: str) -> None:
        types = {rt.key: rt for rt in RESOURCE_TYPES if rt.namespaced}
        for type_key, name in list(self.store.namespaced_objects(namespace)):
            rt = types[type_key]
            self.store.delete(rt, namespace, name)
            if rt is PODS:
                self.containers.remove(namespace, name)


def _same(old: Obj, new: Obj) -> bool:
    def strip(obj: Obj) -> Obj:
        copied = copy.deepcopy(obj)
        meta = copied.get("metadata", {})
        meta.pop("resourceVersion", None)
        for entry in meta.get("managedFields") or []:
            entry.pop("time", None)
        return copied

    return strip(old) == strip(new)


def _sort_key(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _encode_continue(revision: int, start: str) -> str:
    body = json.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start + "\x00"}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def _decode_continue(token: str) -> str:
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return str(body["start"]).rstrip("\x00")
    except (ValueError, KeyError, TypeError) as e:
        raise bad_request("continue key is not valid: incorrect encoded start resourceVersion (version "
                          "meta.k8s.io/v1)") from e

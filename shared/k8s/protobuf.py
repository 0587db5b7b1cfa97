"""Request bodies in ``application/vnd.kubernetes.protobuf``: decoded to the JSON shape of the same object.

kubectl's typed clients (``kubectl create secret|configmap|deployment|namespace|serviceaccount|token``)
and Go programs built on client-go send protobuf. Shared by the gateway (which judges and records what
it decodes) and the local Kubernetes stand-in (which serves it). The envelope is the magic ``k8s\\0`` then a
runtime.Unknown (typeMeta 1 {apiVersion 1, kind 2}, raw 2, contentEncoding 3, contentType 4); ``raw`` is
the object's message, decoded with the field table in :mod:`.protobuf_fields`. Go marshals every
non-pointer field, so zero scalars are dropped (as ``omitempty`` drops them in JSON) except for pointer
fields where an explicit zero means something (``replicas: 0``). Embedded structs (``localObjectReference``,
``volumeSource``) are inlined as JSON inlines them. A field the table does not know is an error
(:class:`ProtobufError`), never silently dropped.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import struct
from typing import Any

from .protobuf_fields import BOOL, INT, MAP, MESSAGES, REPEATED, B, F, S

Obj = dict[str, Any]
MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
ROOTS = {
    ("v1", "Pod"): "core.Pod",
    ("v1", "Secret"): "core.Secret",
    ("v1", "ConfigMap"): "core.ConfigMap",
    ("v1", "Namespace"): "core.Namespace",
    ("v1", "ServiceAccount"): "core.ServiceAccount",
    ("apps/v1", "Deployment"): "apps.Deployment",
    ("authentication.k8s.io/v1", "TokenRequest"): "authn.TokenRequest",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "authn.SelfSubjectReview",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "authz.SelfSubjectAccessReview",
}
_INLINE = {"localObjectReference", "volumeSource", "ephemeralContainerCommon"}
# Pointer fields: present means set, so an explicit zero or false is kept.
_KEEP_ZERO = {
    "replicas", "terminationGracePeriodSeconds", "activeDeadlineSeconds", "revisionHistoryLimit",
    "progressDeadlineSeconds", "expirationSeconds", "automountServiceAccountToken", "enableServiceLinks",
    "immutable", "optional", "runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "privileged",
    "allowPrivilegeEscalation", "readOnlyRootFilesystem", "defaultMode", "mode", "priority",
    "shareProcessNamespace", "deletionGracePeriodSeconds", "controller", "blockOwnerDeletion", "tolerationSeconds",
    "gracePeriodSeconds", "orphanDependents",
}


class ProtobufError(ValueError):
    """A body that is not a protobuf object Airlock can read; the message says why."""


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(number, wire type, value) of every field: ints for varints, bytes for the rest."""
    found: list[tuple[int, int, Any]] = []
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 1:
            value, position = data[position:position + 8], position + 8
        elif wire == 2:
            size, position = _varint(data, position)
            value, position = data[position:position + size], position + size
        elif wire == 5:
            value, position = data[position:position + 4], position + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        if position > len(data):
            raise ProtobufError("truncated field")
        found.append((number, wire, value))
    return found


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(kind: str, wire: int, value: Any, where: str) -> Any:
    if kind == S and wire == 2:
        return bytes(value).decode()
    if kind == B and wire == 2:
        return base64.b64encode(bytes(value)).decode()
    if kind == BOOL and wire == 0:
        return bool(value)
    if kind == INT and wire == 0:
        return _signed(int(value))
    if kind == F and wire == 1:
        return struct.unpack("<d", value)[0]
    raise ProtobufError(f"{where}: wire type {wire} does not carry a {kind}")


def _special(message: str, data: bytes) -> Any:
    values = {number: value for number, _, value in fields(data)}
    if message == "meta.Time":
        seconds = _signed(values.get(1, 0))
        if not seconds and not values.get(2):
            return None
        return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if message == "resource.Quantity":
        return bytes(values.get(1, b"")).decode()
    if message == "intstr.IntOrString":
        return bytes(values.get(3, b"")).decode() if values.get(1) == 1 else _signed(values.get(2, 0))
    if message in ("runtime.RawExtension", "meta.FieldsV1"):
        raw = bytes(values.get(1, b""))
        return json.loads(raw) if raw else {}
    raise ProtobufError(f"{message} is not supported in protobuf bodies")


_SPECIAL = ("meta.Time", "meta.MicroTime", "resource.Quantity", "intstr.IntOrString", "runtime.RawExtension",
            "meta.FieldsV1", "meta.Fields")


def decode_message(data: bytes, message: str) -> Obj:
    table = MESSAGES.get(message)
    if table is None:
        raise ProtobufError(f"{message} is not a message Airlock can decode")
    result: Obj = {}
    for number, wire, value in fields(data):
        spec = table.get(number)
        if spec is None:
            raise ProtobufError(f"field {number} of {message} is unknown to Airlock's decoder; send JSON instead")
        name, kind = spec[0], spec[1]
        where = f"{message}.{name}"
        if kind == MAP:
            entry = {n: v for n, _, v in fields(bytes(value))}
            key = bytes(entry.get(1, b"")).decode()
            value_kind = spec[2]
            raw = entry.get(2, b"" if value_kind in (S, B) else 0)
            decoded: Any
            if value_kind in (S, B, BOOL, INT, F):
                decoded = _scalar(value_kind, 2 if value_kind in (S, B) else 0, raw, where)
            else:
                decoded = _decode_nested(bytes(raw), value_kind)
            result.setdefault(name, {})[key] = decoded
            continue
        if kind in (S, B, BOOL, INT, F):
            if REPEATED in spec and kind == INT and wire == 2:  # packed
                packed, position = [], 0
                while position < len(value):
                    item, position = _varint(value, position)
                    packed.append(_signed(item))
                result.setdefault(name, []).extend(packed)
                continue
            item = _scalar(kind, wire, value, where)
        else:
            if wire != 2:
                raise ProtobufError(f"{where}: expected an embedded message")
            item = _decode_nested(bytes(value), kind)
        if REPEATED in spec:
            result.setdefault(name, []).append(item)
        elif name in _INLINE and isinstance(item, dict):
            result.update(item)
        elif item is None or (item in ("", 0, False) and not isinstance(item, dict) and name not in _KEEP_ZERO):
            result.pop(name, None)
        else:
            result[name] = item
    return result


def _decode_nested(data: bytes, message: str) -> Any:
    return _special(message, data) if message in _SPECIAL else decode_message(data, message)


def decode_object(body: bytes) -> Obj:
    """The JSON form (with apiVersion and kind) of a protobuf-encoded API object."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf prefix")
    envelope = {number: value for number, _, value in fields(body[len(MAGIC):])}
    type_meta = {number: bytes(value).decode() for number, _, value in fields(bytes(envelope.get(1, b"")))}
    api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
    if envelope.get(3):
        raise ProtobufError(f"content encoding {bytes(envelope[3]).decode()!r} is not supported")
    # DeleteOptions is registered in every group version.
    root = ROOTS.get((api_version, kind)) or ("meta.DeleteOptions" if kind == "DeleteOptions" else None)
    if root is None:
        raise ProtobufError(f"{kind} in version {api_version!r} cannot be decoded from protobuf by Airlock")
    return {"apiVersion": api_version, "kind": kind, **decode_message(bytes(envelope.get(2, b"")), root)}

"""OpenAPI v2 as gnostic protobuf (``openapi.v2.Document``): what client-go's OpenAPISchema() decodes.

client-go asks /openapi/v2 for ``application/com.github.proto-openapi.spec.v2@v1.0+protobuf`` and decodes
only that, so a kubectl that validates client-side (v1.20) needs it. This writes the subset of
gnostic's OpenAPIv2.proto the JSON document uses (field numbers from that file); vendor extensions are
``NamedAny`` values holding YAML, as gnostic stores them.
"""

from __future__ import annotations

from typing import Any

import yaml

Obj = dict[str, Any]

MEDIA_TYPES = ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
               "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _string(number: int, value: str) -> bytes:
    return _bytes(number, value.encode()) if value else b""


def _bool(number: int, value: bool) -> bytes:
    return _varint(number << 3) + b"\x01" if value else b""


def _strings(number: int, values: list[str]) -> bytes:
    return b"".join(_bytes(number, v.encode()) for v in values)


def _vendor(number: int, node: Obj) -> bytes:
    """x-... keys as repeated NamedAny{name=1, value=2 Any{yaml=2}}."""
    out = b""
    for key, value in node.items():
        if key.startswith("x-"):
            any_value = _string(2, yaml.safe_dump(value, default_flow_style=False))
            out += _bytes(number, _string(1, key) + _bytes(2, any_value))
    return out


def schema(node: Obj) -> bytes:
    """openapi.v2.Schema."""
    out = _string(1, node.get("$ref", "")) + _string(2, node.get("format", ""))
    out += _string(4, node.get("description", ""))
    out += _strings(19, list(node.get("required", [])))
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out += _bytes(21, _bytes(1, schema(extra)))
    if "type" in node:
        out += _bytes(22, _string(1, node["type"]))
    if isinstance(node.get("items"), dict):
        out += _bytes(23, _bytes(1, schema(node["items"])))
    props = node.get("properties")
    if isinstance(props, dict):
        named = b"".join(_bytes(1, _string(1, k) + _bytes(2, schema(v))) for k, v in props.items())
        out += _bytes(25, named)
    return out + _vendor(31, node)


def _parameter(node: Obj) -> bytes:
    """openapi.v2.ParametersItem{parameter=1 Parameter{body=1 | non_body=2}}."""
    if node.get("in") == "body":
        body = _string(1, node.get("description", "")) + _string(2, node["name"]) + _string(3, "body")
        body += _bool(4, bool(node.get("required"))) + _bytes(5, schema(node.get("schema", {})))
        return _bytes(1, _bytes(1, body))
    if node.get("in") == "path":
        sub = _bool(1, True) + _string(2, "path") + _string(3, node.get("description", "")) + _string(4, node["name"])
        sub += _string(5, node.get("type", "string")) + _bool(19, bool(node.get("uniqueItems")))
        return _bytes(1, _bytes(2, _bytes(4, sub)))
    sub = _bool(1, bool(node.get("required"))) + _string(2, "query") + _string(3, node.get("description", ""))
    sub += _string(4, node["name"]) + _string(6, node.get("type", "string")) + _bool(20, bool(node.get("uniqueItems")))
    return _bytes(1, _bytes(2, _bytes(3, sub)))


def _operation(node: Obj) -> bytes:
    out = _strings(1, list(node.get("tags", []))) + _string(3, node.get("description", ""))
    out += _string(5, node.get("operationId", ""))
    out += _strings(6, list(node.get("produces", []))) + _strings(7, list(node.get("consumes", [])))
    out += b"".join(_bytes(8, _parameter(p)) for p in node.get("parameters", []))
    responses = b""
    for code, response in node.get("responses", {}).items():
        body = _string(1, response.get("description", ""))
        if "schema" in response:
            body += _bytes(2, _bytes(1, schema(response["schema"])))
        responses += _bytes(1, _string(1, code) + _bytes(2, _bytes(1, body)))
    out += _bytes(9, responses)
    out += _strings(10, list(node.get("schemes", [])))
    return out + _vendor(13, node)


_METHODS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def _path_item(node: Obj) -> bytes:
    out = b""
    for method, number in _METHODS.items():
        if method in node:
            out += _bytes(number, _operation(node[method]))
    out += b"".join(_bytes(9, _parameter(p)) for p in node.get("parameters", []))
    return out


def document(doc: Obj) -> bytes:
    """openapi.v2.Document from the JSON v2 document."""
    out = _string(1, doc["swagger"])
    info = doc.get("info", {})
    out += _bytes(2, _string(1, info.get("title", "")) + _string(2, info.get("version", "")))
    paths = b"".join(_bytes(2, _string(1, p) + _bytes(2, _path_item(item))) for p, item in doc["paths"].items())
    out += _bytes(8, paths)
    definitions = b"".join(_bytes(1, _string(1, name) + _bytes(2, schema(d)))
                           for name, d in doc["definitions"].items())
    out += _bytes(9, definitions)
    security = b""
    for name, scheme in doc.get("securityDefinitions", {}).items():
        api_key = _string(1, scheme["type"]) + _string(2, scheme["name"]) + _string(3, scheme["in"])
        api_key += _string(4, scheme.get("description", ""))
        security += _bytes(1, _string(1, name) + _bytes(2, _bytes(2, api_key)))
    if security:
        out += _bytes(13, security)
    for requirement in doc.get("security", []):
        named = b"".join(_bytes(1, _string(1, k) + _bytes(2, _strings(1, list(v)))) for k, v in requirement.items())
        out += _bytes(12, named)
    return out

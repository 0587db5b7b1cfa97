"""Request bodies as the API server reads them: JSON, YAML or protobuf in, the object's JSON shape out.

The media type decides, as the API server's negotiation does (no Content-Type: JSON): ``application/json``
and the JSON patch types, ``application/yaml`` and ``application/apply-patch+yaml`` (read as JSON when it
is JSON), ``application/vnd.kubernetes.protobuf`` (``shared.k8s.protobuf``). Anything else (CBOR, a
compressed body, a media type Airlock does not know) cannot be judged, and is refused as ``unknown``.

Reading differently from the API server must not be possible, so the reader is stricter where Python's
parsers and Go's differ: a repeated key anywhere makes a body unreadable (Go's decoder merges repeated
objects into one struct, Python's keeps the last: ``{"securityContext": {"privileged": true},
"securityContext": {}}`` would look harmless), and so does nesting deeper than the API server accepts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from shared.k8s.protobuf import ProtobufError, decode_object

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = {JSON_PATCH: "json", MERGE_PATCH: "merge", STRATEGIC_PATCH: "strategic", APPLY_PATCH: "apply"}
_JSON_TYPES = frozenset({JSON, JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH})
_YAML_TYPES = frozenset({YAML, "application/x-yaml", "text/yaml", APPLY_PATCH})


@dataclass(frozen=True, slots=True)
class DecodedBody:
    """A request body: ``value`` (JSON shape) or ``error``; ``media_type`` as sent; ``protobuf`` when it
    was decoded from protobuf (the recording shows the decoded object, not the bytes)."""

    media_type: str
    value: Any = None
    error: str | None = None
    protobuf: bool = False

    @property
    def patch_type(self) -> str | None:
        return PATCH_TYPES.get(self.media_type)


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, without parameters, lower case."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_body(content_type: str | None, raw: bytes, *, content_encoding: str | None = None) -> DecodedBody:
    """Decode a non-empty request body, or say why it cannot be read."""
    media = media_type(content_type) or JSON
    if content_encoding and content_encoding.strip().lower() not in ("", "identity"):
        return DecodedBody(media, error=f"Airlock cannot read a body with Content-Encoding {content_encoding!r}")
    try:
        if media == PROTOBUF:
            return DecodedBody(media, decode_object(raw), protobuf=True)
        if media in _JSON_TYPES:
            return DecodedBody(media, loads_json(raw))
        if media in _YAML_TYPES:
            return DecodedBody(media, _loads_yaml_or_json(raw))
    except ProtobufError as e:
        return DecodedBody(media, error=f"the protobuf body cannot be decoded ({e})")
    except (ValueError, yaml.YAMLError, RecursionError) as e:
        return DecodedBody(media, error=f"the {media} body does not parse: {_short(e)}")
    return DecodedBody(media, error=f"Airlock cannot read a body of media type {media!r}")


def loads_json(raw: bytes | str) -> Any:
    """JSON with repeated keys refused (``ValueError``)."""
    return json.loads(raw, object_pairs_hook=_unique_pairs)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _loads_yaml_or_json(raw: bytes) -> Any:
    try:
        return loads_json(raw)
    except ValueError as e:
        if "appears twice" in str(e):
            raise
    return yaml.load(raw.decode("utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader refusing repeated mapping keys (sigs.k8s.io/yaml refuses them too)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    keys = [loader.construct_object(key, deep=deep) for key, _ in node.value]
    seen: set[Any] = set()
    for key in keys:
        try:
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} appears twice", node.start_mark)
            seen.add(key)
        except TypeError as e:  # an unhashable key (a list or mapping as key): not an API object
            raise yaml.constructor.ConstructorError(None, None, "a mapping key that is not a scalar",
                                                    node.start_mark) from e  # fmt: skip
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]

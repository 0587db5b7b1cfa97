"""Content negotiation: which representation a response takes, and which request bodies are understood.

The stand-in serves JSON and YAML. A real API server also serves protobuf for built-in types; the stand-in
does not, and does what a server does for a type it cannot encode as protobuf: it skips that media range and
takes the client's next acceptable one, so kubectl and client-go (which send
``application/vnd.kubernetes.protobuf, application/json``) get JSON with ``Content-Type: application/json``;
a client accepting protobuf only gets 406 NotAcceptable. ``as=Table`` and ``as=PartialObjectMetadata``
(``g=meta.k8s.io``, ``v=v1`` or ``v1beta1``) convert the response, as the API server's transformers do.
"""

from __future__ import annotations

from dataclasses import dataclass

from .status import not_acceptable

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
SERVED = [JSON, YAML]


@dataclass(frozen=True, slots=True)
class MediaRange:
    type: str
    params: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str:
        return next((v for k, v in self.params if k == name), "")


@dataclass(frozen=True, slots=True)
class Representation:
    """How to encode a response: ``media_type`` (json or yaml) and an optional conversion."""

    media_type: str
    convert: str = ""  # "", Table, PartialObjectMetadata, PartialObjectMetadataList
    version: str = "v1"  # of meta.k8s.io, for conversions

    @property
    def content_type(self) -> str:
        if self.convert:
            return f"{self.media_type};as={self.convert};v={self.version};g=meta.k8s.io"
        return self.media_type


def parse_accept(header: str | None) -> list[MediaRange]:
    ranges = []
    for part in (header or "").split(","):
        part = part.strip()
        if not part:
            continue
        pieces = [p.strip() for p in part.split(";")]
        params = []
        for piece in pieces[1:]:
            name, _, value = piece.partition("=")
            params.append((name.strip().lower(), value.strip().strip('"')))
        ranges.append(MediaRange(pieces[0].lower(), tuple(params)))
    return ranges


def negotiate(header: str | None, *, allow_conversion: bool = True) -> Representation:
    """The first acceptable representation in the client's order; 406 if none."""
    ranges = parse_accept(header)
    if not ranges:
        return Representation(JSON)
    for media in ranges:
        if media.type in (PROTOBUF, "application/cbor"):
            continue
        convert = media.param("as")
        if convert:
            if not allow_conversion or media.param("g") != "meta.k8s.io" \
                    or media.param("v") not in ("v1", "v1beta1") \
                    or convert not in ("Table", "PartialObjectMetadata", "PartialObjectMetadataList"):
                continue
            if media.type in (JSON, "application/*", "*/*"):
                return Representation(JSON, convert, media.param("v"))
            continue
        if media.type in (JSON, "application/*", "*/*", "application/json-seq"):
            return Representation(JSON)
        if media.type == YAML:
            return Representation(YAML)
    raise not_acceptable(SERVED)


def body_media_type(content_type: str | None) -> str:
    """The media type of a request body, without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()

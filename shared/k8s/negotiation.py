"""Which representation the gateway lets a client ask the cluster for: one it can read and mask.

A client may ask for protobuf (``application/vnd.kubernetes.protobuf``, what client-go's typed clients
prefer), CBOR or YAML; the API server would answer with it, and the gateway could then neither mask a
Secret in it nor record it readably. So the ``Accept`` header is rewritten before the request goes on: only
JSON media ranges go on, in the client's order; every other range the API server could answer (protobuf,
CBOR, YAML, ``*/*``, ``application/*``) becomes ``application/json`` with the same parameters (so
``as=Table;v=v1;g=meta.k8s.io`` still asks for a Table, now in JSON); repeats are dropped; an empty or
unusable header becomes ``application/json``. Clients decode by the response's Content-Type, so kubectl, client-go
and the Python client all read the JSON they get. The response's Content-Type is checked again before
anything is masked (``is_json``): the gateway never relies on the server having honoured the rewrite.
"""

from __future__ import annotations

JSON = "application/json"
_AS_JSON = frozenset({"*/*", "application/*", "application/vnd.kubernetes.protobuf", "application/cbor",
                      "application/yaml", "application/json-seq"})


def maskable_accept(accept: str | None) -> str:
    """The ``Accept`` header to send upstream (see the module docstring)."""
    kept: list[str] = []
    for part in (accept or "").split(","):
        part = part.strip()
        if not part:
            continue
        media, _, params = part.partition(";")
        media = media.strip().lower()
        if media == JSON or media in _AS_JSON:
            kept.append(JSON + (";" + params.strip() if params.strip() else ""))
    unique = list(dict.fromkeys(kept))
    return ", ".join(unique) if unique else JSON


def is_json(content_type: str | None) -> bool:
    """Whether a response's Content-Type is JSON (any parameters: ``as=Table``, ``stream=watch``, charset)."""
    return (content_type or "").split(";", 1)[0].strip().lower() == JSON


def is_watch(content_type: str | None) -> bool:
    """A watch stream's Content-Type (``application/json;stream=watch``), as the API server labels it."""
    params = [p.strip().lower() for p in (content_type or "").split(";")[1:]]
    return "stream=watch" in params

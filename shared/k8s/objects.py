"""Masking API objects: Secret values redacted, ConfigMap values through the detectors, in every shape the
API answers with.

Shapes: a single object, a ``...List`` (``SecretList``, the generic ``List``), a watch event (``{"type",
"object"}``), a ``Table`` (``as=Table``: each row's ``object``, and its cells) and ``PartialObjectMetadata``
(``as=PartialObjectMetadata``: metadata only). List items and Table rows usually carry no ``kind``; the
resource the request asked for says what they are (``hint``).

- Secret: every ``data`` value becomes the base64 of ``****`` (clients still decode it), every
  ``stringData`` value ``****``; the ``kubectl.kubernetes.io/last-applied-configuration`` annotation (the
  object as last applied, values included) is masked as the object it describes, or replaced whole if it
  does not parse. In a Table of Secrets, cells of any column but the standard ones (Name, Type, Data, Age)
  are redacted: a column Airlock does not know may show a value.
- ConfigMap: ``data`` values, ``binaryData`` values that are text, Table cells and the last-applied
  annotation go through the detectors (``shared.masking.text``), as SQL results do.
- Then every string of any object goes through the detectors (a key in a container's env, a card number
  in an annotation), unless the session's masking is off.

``mask`` changes the object in place and counts what it masked (``counts``: ``secret`` per Secret value,
detector names per detector match). ``redact_for_recording`` is stricter, for what is stored rather than
sent: it also removes a TokenRequest's token and runs the detectors over every string of any object.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from typing import Any

from shared.masking.text import SHORTEST_VALUE, TextMasker

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
REDACTED = "****"
REDACTED_B64 = base64.b64encode(REDACTED.encode()).decode()
SECRET_COUNT = "secret"
# Standard Table columns of Secrets (the API server's printer): they show no value.
SECRET_COLUMNS = frozenset({"name", "type", "data", "age"})
_HINT_KINDS = {("", "secrets"): "Secret", ("", "configmaps"): "ConfigMap"}
MASKED_KINDS = frozenset({"Secret", "ConfigMap"})
# Fields the API server writes itself, in formats no detectable value fits (uids, versions, RFC 3339 times).
STRUCTURAL = frozenset({"uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "apiVersion", "kind",
                        "lastTransitionTime", "lastProbeTime", "lastUpdateTime", "startTime", "startedAt",
                        "finishedAt", "fieldsType"})


def hint_kind(group: str, resource: str) -> str:
    """The kind of kind-less items in answers to requests for this resource ("" when not one Airlock masks)."""
    return _HINT_KINDS.get((group, resource), "")


class ObjectMasker:
    def __init__(self, text: TextMasker | None, *, secrets: bool = True) -> None:
        self.text = text  # None: masking is off for this session (Secrets are still redacted)
        self.secrets = secrets
        self.counts: Counter[str] = Counter()
        self._columns: list[str] = []  # the last Table's column names (one exchange: one resource)

    def take_counts(self) -> dict[str, int]:
        counts = dict(self.counts)
        if self.text is not None:
            for name, n in self.text.take_counts().items():
                counts[name] = counts.get(name, 0) + n
        self.counts.clear()
        return counts

    # ------------------------------------------------------------------ shapes

    def mask(self, obj: Any, hint: str = "") -> None:
        """Mask ``obj`` (any shape above) in place; ``hint`` is the kind of kind-less items. Then, as SQL
        results are, every string of it goes through the detectors (a key in a container's env, an e-mail
        in an annotation)."""
        self._shape(obj, hint)
        if self.text is not None:
            self._strings(obj)

    def _shape(self, obj: Any, hint: str) -> None:
        if not isinstance(obj, dict):
            return
        kind = obj.get("kind")
        kind = kind if isinstance(kind, str) else ""
        if kind == "Table":
            self._table(obj, hint)
        elif isinstance(obj.get("items"), list) and (kind.endswith("List") or not kind):
            if kind == "List":
                item_kind = ""  # a generic List: each item says what it is
            elif kind.endswith("List") and kind != "PartialObjectMetadataList":
                item_kind = kind[: -len("List")]
            else:
                item_kind = hint
            for item in obj["items"]:
                self._shape(item, item_kind)
        elif "object" in obj and isinstance(obj.get("type"), str) and kind in ("", "WatchEvent"):
            self._shape(obj["object"], hint)
        else:
            self._object(obj, kind or hint, hint)

    def _object(self, obj: dict[str, Any], kind: str, hint: str) -> None:
        if kind == "PartialObjectMetadata":
            kind = hint
        if kind == "Secret":
            self._secret(obj)
        elif kind == "ConfigMap":
            self._configmap(obj)

    def _table(self, table: dict[str, Any], hint: str) -> None:
        columns = table.get("columnDefinitions")
        if isinstance(columns, list) and columns:
            # A watch of Tables sends the columns with its first event only: later rows use those.
            self._columns = [str(c.get("name", "")).lower() if isinstance(c, dict) else "" for c in columns]
        names = self._columns
        for row in table.get("rows") or []:
            if not isinstance(row, dict):
                continue
            if isinstance(row.get("object"), dict):
                self._shape(row["object"], hint)
            cells = row.get("cells")
            if isinstance(cells, list):
                row["cells"] = [self._cell(cell, names[i] if i < len(names) else "", hint)
                                for i, cell in enumerate(cells)]  # fmt: skip

    def _cell(self, cell: Any, column: str, hint: str) -> Any:
        if hint == "Secret" and self.secrets and column not in SECRET_COLUMNS:
            self.counts[SECRET_COUNT] += 1
            return REDACTED
        if hint == "ConfigMap" and isinstance(cell, str) and self.text is not None:
            return self.text.mask(cell)
        return cell

    # ------------------------------------------------------------------ kinds

    def _secret(self, obj: dict[str, Any]) -> None:
        if not self.secrets:
            return
        for field, value in (("data", REDACTED_B64), ("stringData", REDACTED)):
            values = obj.get(field)
            if isinstance(values, dict):
                for key in values:
                    values[key] = value
                    self.counts[SECRET_COUNT] += 1
            elif values is not None:
                obj[field] = {}  # not a map: nothing a client can use, and nothing to leak
        self._last_applied(obj, "Secret")

    def _configmap(self, obj: dict[str, Any]) -> None:
        text = self.text
        if text is None:
            return
        data = obj.get("data")
        if isinstance(data, dict):
            for key, value in data.items():
                if isinstance(value, str):
                    data[key] = text.mask(value)
        binary = obj.get("binaryData")
        if isinstance(binary, dict):
            for key, value in binary.items():
                if isinstance(value, str):
                    binary[key] = self._binary(value)
        self._last_applied(obj, "ConfigMap")

    def _binary(self, value: str) -> str:
        assert self.text is not None
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return value
        masked = self.text.mask_bytes(raw)
        return value if masked is raw else base64.b64encode(masked).decode()

    def _last_applied(self, obj: dict[str, Any], kind: str) -> None:
        metadata = obj.get("metadata")
        annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
        if not isinstance(annotations, dict) or not isinstance(annotations.get(LAST_APPLIED), str):
            return
        try:
            applied = json.loads(annotations[LAST_APPLIED])
        except ValueError:
            applied = None
        if not isinstance(applied, dict):
            annotations[LAST_APPLIED] = REDACTED
            self.counts[SECRET_COUNT if kind == "Secret" else "last_applied"] += 1
            return
        self._object(applied, kind, kind)
        annotations[LAST_APPLIED] = json.dumps(applied, separators=(",", ":")) + "\n"

    # ------------------------------------------------------------------ for the recording

    def redact_for_recording(self, obj: Any, hint: str = "") -> Any:
        """``obj`` as it may be stored: masked as for the agent (Secrets always redacted), a TokenRequest's
        token removed, and every string through the detectors. Changes ``obj`` in place."""
        # What is stored is not what the agent was shown: counts stay those of the agent's view.
        secrets, self.secrets = self.secrets, True
        counts = self.counts.copy()
        found = self.text.found.copy() if self.text is not None else None
        try:
            self.mask(obj, hint)
        finally:
            self.secrets = secrets
            self.counts = counts
            if self.text is not None and found is not None:
                self.text.found = found
        if isinstance(obj, dict) and obj.get("kind") == "TokenRequest":
            status = obj.get("status")
            if isinstance(status, dict) and "token" in status:
                status["token"] = "[redacted]"
        return obj

    def _strings(self, value: Any) -> Any:
        """Every string through the detectors, but for what the API server itself writes and no value
        can hide in: ``managedFields`` (field paths), uids, resource versions, API versions, kinds and
        timestamps (``STRUCTURAL``); strings too short for any detector are skipped at once."""
        mask = self.text.mask if self.text is not None else None
        assert mask is not None
        stack = [value]
        while stack:
            node = stack.pop()
            items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
            for key, child in list(items):
                if isinstance(child, str):
                    if len(child) >= SHORTEST_VALUE and key not in STRUCTURAL:
                        masked = mask(child)
                        if masked is not child:
                            node[key] = masked
                elif isinstance(child, dict | list) and key != "managedFields":
                    stack.append(child)
        return value

"""Server-side apply and ``metadata.managedFields``: who owns which field, and what an apply changes.

Theory of operation (a reduced structured-merge-diff): a field path is a tuple of fieldsV1 segments
(``f:spec``, ``k:{"name":"web"}`` for an item of a keyed list, ``v:"x"`` for a member of a set, ``.`` for the
item itself). Every write records, per manager, the leaf paths it set. An apply (PATCH with
``application/apply-patch+yaml``) is a manager's complete intent:

1. conflicts: a path in the applied config that another manager owns with a different live value is a
   conflict (409, the manager and the paths named) unless ``force=true``, which takes the ownership over;
2. removal: paths this manager applied before, applies no longer and nobody else owns are deleted;
3. merge: the applied config merges into the live object (maps recursively, keyed lists by their keys,
   sets by union, other lists replaced);
4. the manager's Apply entry becomes exactly the applied paths.

Non-apply writes (create, update, patch) give the writer (``fieldManager`` or the user agent's product
name) the paths they changed and take those paths from everyone else.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from .schema import Definition, Schema, child, element

Obj = dict[str, Any]
Path = tuple[str, ...]

_SYSTEM_METADATA = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                    "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"}


@dataclass(frozen=True, slots=True)
class Conflict:
    manager: str
    api_version: str
    path: str  # .spec.replicas


class ApplyConflict(Exception):
    def __init__(self, conflicts: list[Conflict]) -> None:
        super().__init__("apply conflicts")
        self.conflicts = conflicts


# ---------------------------------------------------------------------- paths


def _item_key(item: Any, keys: tuple[str, ...]) -> str:
    return "k:" + json.dumps({k: item.get(k) for k in keys if k in item}, separators=(",", ":"))


def field_paths(obj: Obj, schema: Definition | Schema | None) -> set[Path]:
    """The leaf paths an object sets, skipping identity and system fields and status."""
    paths: set[Path] = set()
    for key, value in obj.items():
        if key in ("apiVersion", "kind", "status"):
            continue
        if key == "metadata" and isinstance(value, dict):
            meta = {k: v for k, v in value.items() if k not in _SYSTEM_METADATA}
            paths |= _paths(meta, child(schema, key), ("f:metadata",))
            continue
        paths |= _paths(value, child(schema, key), (f"f:{key}",))
    return paths


def _paths(value: Any, schema: Schema | None, prefix: Path) -> set[Path]:
    if isinstance(value, dict) and value:
        found: set[Path] = set()
        for key, item in value.items():
            found |= _paths(item, _child(schema, key), (*prefix, f"f:{key}"))
        return found
    if isinstance(value, list) and schema is not None and schema.list_type in ("map", "set") and value:
        found = set()
        items_schema = element(schema)
        for item in value:
            if schema.list_type == "set" or not isinstance(item, dict):
                found.add((*prefix, "v:" + json.dumps(item, separators=(",", ":"))))
                continue
            item_prefix = (*prefix, _item_key(item, schema.list_keys))
            found.add((*item_prefix, "."))
            found |= _paths(item, items_schema, item_prefix)
        return found
    return {prefix}


def _child(schema: Schema | None, key: str) -> Schema | None:
    return child(schema, key) if schema is not None else None


def _navigate(obj: Any, path: Path) -> tuple[bool, Any]:
    """(found, value) at ``path``."""
    current = obj
    for segment in path:
        if segment == ".":
            continue
        kind, _, rest = segment.partition(":")
        if kind == "f" and isinstance(current, dict) and rest in current:
            current = current[rest]
        elif kind == "k" and isinstance(current, list):
            wanted = json.loads(rest)
            match = [i for i in current if isinstance(i, dict) and all(i.get(k) == v for k, v in wanted.items())]
            if not match:
                return False, None
            current = match[0]
        elif kind == "v" and isinstance(current, list):
            wanted_value = json.loads(rest)
            if wanted_value not in current:
                return False, None
            current = wanted_value
        else:
            return False, None
    return True, current


def _remove(obj: Any, path: Path) -> None:
    if not path:
        return
    if path[-1] == ".":
        path = path[:-1]
    found, parent = _navigate(obj, path[:-1])
    if not found:
        return
    kind, _, rest = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(rest, None)
    elif kind == "k" and isinstance(parent, list):
        wanted = json.loads(rest)
        parent[:] = [i for i in parent if not (isinstance(i, dict) and all(i.get(k) == v for k, v in wanted.items()))]
    elif kind == "v" and isinstance(parent, list):
        wanted_value = json.loads(rest)
        parent[:] = [i for i in parent if i != wanted_value]


def _dotted(path: Path) -> str:
    parts = []
    for segment in path:
        kind, _, rest = segment.partition(":")
        if segment == ".":
            continue
        if kind == "f":
            parts.append("." + rest)
        elif kind == "k":
            parts.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(rest).items()) + "]")
        else:
            parts.append(f"[={rest}]")
    return "".join(parts)


def to_fields_v1(paths: set[Path]) -> Obj:
    tree: Obj = {}
    for path in sorted(paths):
        node = tree
        for segment in path:
            node = node.setdefault(segment, {})
    return tree


def from_fields_v1(tree: Any, prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    if not isinstance(tree, dict):
        return paths
    for segment, sub in tree.items():
        here = (*prefix, segment)
        if isinstance(sub, dict) and sub:
            paths |= from_fields_v1(sub, here)
        else:
            paths.add(here)
    return paths


# ---------------------------------------------------------------------- managers


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entries(obj: Obj) -> list[Obj]:
    entries = obj.get("metadata", {}).get("managedFields") or []
    return [e for e in entries if isinstance(e, dict)]


def _owned(entry: Obj) -> set[Path]:
    return from_fields_v1(entry.get("fieldsV1", {}))


def _set_entries(obj: Obj, entries: list[tuple[Obj, set[Path]]]) -> None:
    kept = []
    for entry, paths in entries:
        if paths:
            entry = {**entry, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(paths)}
            kept.append(entry)
    obj.setdefault("metadata", {})["managedFields"] = kept


def record_update(old: Obj | None, new: Obj, manager: str, api_version: str,
                  schema: Definition | None) -> None:
    """Give ``manager`` (operation Update) the paths this write changed; take them from the others."""
    new_paths = field_paths(new, schema)
    old_paths = field_paths(old, schema) if old is not None else set()
    changed = {p for p in new_paths if p not in old_paths or _navigate(old, p) != _navigate(new, p)}
    gone = old_paths - new_paths
    entries: list[tuple[Obj, set[Path]]] = []
    mine: tuple[Obj, set[Path]] | None = None
    for entry in _entries(old or new):
        owned = (_owned(entry) - gone) & new_paths
        if (entry.get("manager"), entry.get("operation"), entry.get("apiVersion")) == (manager, "Update", api_version):
            mine = (entry, owned)
            continue
        entries.append((entry, owned - changed))
    if mine is None:
        mine = ({"manager": manager, "operation": "Update", "apiVersion": api_version}, set())
    if changed or mine[1]:
        entries.append(({**mine[0], "time": _now()}, mine[1] | changed))
    _set_entries(new, entries)


def server_side_apply(live: Obj | None, applied: Obj, manager: str, api_version: str, force: bool,
                      schema: Definition | None) -> Obj:
    """The object after ``manager`` applies ``applied`` to ``live`` (None: create). Raises ApplyConflict."""
    applied_paths = field_paths(applied, schema)
    base = copy.deepcopy(live) if live is not None else {}
    entries = [(e, _owned(e)) for e in _entries(base)]
    conflicts: list[Conflict] = []
    taken: set[Path] = set()
    for entry, owned in entries:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            continue
        for path in sorted(owned & applied_paths):
            if path[-1] == ".":
                continue
            if _navigate(base, path) != _navigate(applied, path):
                conflicts.append(Conflict(str(entry.get("manager")), str(entry.get("apiVersion", "")),
                                          _dotted(path)))
                taken.add(path)
    if conflicts and not force:
        raise ApplyConflict(conflicts)

    previous = next((owned for e, owned in entries
                     if e.get("manager") == manager and e.get("operation") == "Apply"), set())
    others = set().union(*(owned for e, owned in entries
                           if not (e.get("manager") == manager and e.get("operation") == "Apply")))
    # Whole list items first (their key fields identify them), then leaves, deepest first.
    for path in sorted(previous - applied_paths - others, key=lambda p: (p[-1] != ".", -len(p), p)):
        _remove(base, path)

    result = _merge(base, applied, schema)
    assert isinstance(result, dict)
    if isinstance(result.get("metadata"), dict) and live is not None:
        for key in _SYSTEM_METADATA - {"managedFields"}:
            if key in live.get("metadata", {}):
                result["metadata"][key] = live["metadata"][key]
    kept: list[tuple[Obj, set[Path]]] = []
    for entry, owned in entries:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            continue
        kept.append((entry, owned - taken if force else owned))
    kept.append(({"manager": manager, "operation": "Apply", "apiVersion": api_version, "time": _now()},
                 applied_paths))
    _set_entries(result, kept)
    return result


def _merge(live: Any, applied: Any, schema: Definition | Schema | None) -> Any:
    if isinstance(applied, dict):
        result = copy.deepcopy(live) if isinstance(live, dict) else {}
        for key, value in applied.items():
            result[key] = _merge(result.get(key), value, child(schema, key))
        return result
    if isinstance(applied, list) and isinstance(schema, Schema) and schema.list_type in ("map", "set") \
            and isinstance(live, list):
        result_list = copy.deepcopy(live)
        if schema.list_type == "set":
            return result_list + [v for v in applied if v not in result_list]
        for item in applied:
            if not isinstance(item, dict):
                result_list.append(copy.deepcopy(item))
                continue
            index = next((i for i, existing in enumerate(result_list) if isinstance(existing, dict)
                          and all(existing.get(k) == item.get(k) for k in schema.list_keys)), None)
            if index is None:
                result_list.append(copy.deepcopy(item))
            else:
                result_list[index] = _merge(result_list[index], item, element(schema))
        return result_list
    return copy.deepcopy(applied)


def conflict_message(conflicts: list[Conflict]) -> str:
    """As structured-merge-diff words it (one conflict on one line; several as a list)."""
    if len(conflicts) == 1:
        c = conflicts[0]
        return f'Apply failed with 1 conflict: conflict with "{c.manager}" using {c.api_version}: {c.path}'
    lines = [f"Apply failed with {len(conflicts)} conflicts: "]
    by_manager: dict[tuple[str, str], list[str]] = {}
    for c in conflicts:
        by_manager.setdefault((c.manager, c.api_version), []).append(c.path)
    parts = []
    for (manager, api_version), paths in by_manager.items():
        parts.append(f'conflicts with "{manager}" using {api_version}:\n' + "\n".join(f"- {p}" for p in paths))
    return lines[0] + "\n".join(parts)

"""The three patch formats of PATCH: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge.

Strategic merge patch follows apimachinery's strategicpatch with the schema's patch metadata: lists with a
merge strategy merge by their merge key (primitive lists take the union), other lists are replaced, maps
merge recursively and ``null`` deletes. Directives: ``$patch: replace|delete|merge`` in maps and list items,
``$retainKeys``, ``$setElementOrder/<list>`` and ``$deleteFromPrimitiveList/<list>``. These are the
directives client-side ``kubectl apply`` and ``kubectl patch`` emit.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from .schema import Definition, Schema, child, element
from .status import ApiError, bad_request

Obj = dict[str, Any]

_SET_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


class PatchError(ValueError):
    """A patch that cannot be applied; ``code`` is 400 (malformed) or 422 (does not apply)."""

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.code = code


def json_patch(document: Obj, operations: Any) -> Obj:
    if not isinstance(operations, list) or not all(isinstance(o, dict) for o in operations):
        raise PatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch", 400)
    result: Any = document
    for operation in operations:  # one at a time, so an error can name the operation that failed
        op, path = operation.get("op"), operation.get("path")
        try:
            result = jsonpatch.JsonPatch([operation]).apply(result)
        except jsonpatch.JsonPatchTestFailed as e:
            raise PatchError(f"testing value {path} failed: test failed") from e
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
            if op not in ("add", "remove", "replace", "move", "copy", "test"):
                raise PatchError(f"Unexpected kind: {op}", 400) from e
            raise PatchError(f'{op} operation does not apply: doc is missing path: "{path}": missing value') from e
        except (TypeError, KeyError, AttributeError, ValueError) as e:
            raise PatchError(f"invalid JSON patch operation {operation}: {e}", 400) from e
    if not isinstance(result, dict):
        raise PatchError("the patch did not produce an object")
    return result


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge(original: Obj, patch: Any, schema: Schema | Definition | None) -> Obj:
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object", 400)
    merged = _merge_map(copy.deepcopy(original), patch, schema)
    if merged is None:
        raise PatchError("the patch deletes the whole object")
    return merged


def _merge_map(original: Obj, patch: Obj, schema: Schema | Definition | None) -> Obj | None:
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive not in (None, "merge"):
        raise PatchError(f"Unknown patch type: {directive} in map: {patch}", 400)

    retain = patch.get("$retainKeys")
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith(_SET_ORDER):
            orders[key[len(_SET_ORDER):]] = value if isinstance(value, list) else []
            continue
        if key.startswith(_DELETE_PRIMITIVE):
            field_name = key[len(_DELETE_PRIMITIVE):]
            current = original.get(field_name)
            if isinstance(current, list) and isinstance(value, list):
                original[field_name] = [v for v in current if v not in value]
            continue
        if value is None:
            original.pop(key, None)
            continue
        field_schema = child(schema, key)
        current = original.get(key)
        if isinstance(value, dict):
            merged = _merge_map(current if isinstance(current, dict) else {}, value, field_schema)
            if merged is None:
                original.pop(key, None)
            else:
                original[key] = merged
        elif isinstance(value, list):
            original[key] = _merge_list(current if isinstance(current, list) else [], value, field_schema)
        else:
            original[key] = value

    for key, order in orders.items():
        if isinstance(original.get(key), list):
            original[key] = _apply_order(original[key], order, child(schema, key))
    if isinstance(retain, list):
        for key in list(original):
            if key not in retain:
                del original[key]
    return original


def _merge_list(original: list[Any], patch: list[Any], schema: Schema | None) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
    if schema is None or "merge" not in schema.patch_strategy.split(","):
        return [_strip_directives(copy.deepcopy(item)) for item in patch]
    key = schema.merge_key
    if not key:  # a merged list of primitives: the union, in order
        result = list(original)
        for item in patch:
            if item not in result:
                result.append(item)
        return result
    result = list(original)
    items_schema = element(schema)
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"invalid patch: list item {item!r} is not an object (merge key {key})", 400)
        if key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {key}", 400)
        index = next((i for i, existing in enumerate(result)
                      if isinstance(existing, dict) and existing.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
            continue
        if index is None:
            result.append(_strip_directives(copy.deepcopy(item)))
        else:
            merged = _merge_map(result[index], item, items_schema)
            if merged is None:
                del result[index]
            else:
                result[index] = merged
    return result


def _apply_order(items: list[Any], order: list[Any], schema: Schema | None) -> list[Any]:
    key = schema.merge_key if schema is not None else ""

    def identity(item: Any) -> Any:
        return item.get(key) if key and isinstance(item, dict) else item

    rank = {repr(identity(value)): i for i, value in enumerate(order)}
    ordered = sorted((i for i in items if repr(identity(i)) in rank), key=lambda i: rank[repr(identity(i))])
    others = [i for i in items if repr(identity(i)) not in rank]
    return ordered + others


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items()
                if not (k.startswith("$") and (k in ("$patch", "$retainKeys") or k.startswith(_SET_ORDER)
                                               or k.startswith(_DELETE_PRIMITIVE)))}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def as_api_error(error: PatchError) -> ApiError:
    if error.code == 400:
        return bad_request(str(error))
    return ApiError(422, "Invalid", str(error))

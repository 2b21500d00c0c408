"""The four patch types of the Kubernetes API, on plain dicts.

Strategic merge reads `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` from
the OpenAPI schema handed in (a `Catalog.resolve`-able schema), so containers merge by
name, ports by containerPort, finalizers as a set, and everything else replaces.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import jsonpatch

Resolve = Callable[[dict | None], dict]


class PatchError(ValueError):
    """A patch that cannot be applied (the API answers 422 or 400)."""


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def json_patch(target: dict, ops: list) -> dict:
    """RFC 6902 JSON patch."""
    if not isinstance(ops, list):
        raise PatchError("json patch must be a list of operations")
    try:
        return jsonpatch.apply_patch(target, ops)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, TypeError) as exc:
        raise PatchError(str(exc)) from exc


def _child(resolve: Resolve, schema: dict, key: str) -> dict:
    schema = resolve(schema)
    return resolve(schema.get("properties", {}).get(key) or schema.get("additionalProperties") or {})


def strategic_merge(target, patch, schema: dict, resolve: Resolve):
    """Strategic merge patch of `target` (a dict) with `patch` under `schema`."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    out = copy.deepcopy(target)
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            out[field] = [v for v in out.get(field, []) if v not in value]
            continue
        if value is None:
            out.pop(key, None)
            continue
        field_schema = resolve(resolve(schema).get("properties", {}).get(key) or {})
        if not field_schema:
            field_schema = _child(resolve, schema, key)
        if isinstance(value, dict):
            merged = strategic_merge(out.get(key), value, field_schema, resolve)
            if merged is None:
                out.pop(key, None)
            else:
                out[key] = merged
        elif isinstance(value, list):
            out[key] = _merge_list(out.get(key), value, field_schema, resolve)
        else:
            out[key] = value
    if retain is not None:
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _merge_list(target, patch: list, schema: dict, resolve: Resolve) -> list:
    strategy = schema.get("x-kubernetes-patch-strategy", "")
    merge_key = schema.get("x-kubernetes-patch-merge-key")
    if "merge" not in strategy.split(",") or not isinstance(target, list):
        return [i for i in copy.deepcopy(patch) if not (isinstance(i, dict) and "$patch" in i)]
    if not merge_key:
        out = list(target)
        out.extend(v for v in patch if v not in out)
        return copy.deepcopy(out)
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [i for i in copy.deepcopy(patch) if "$patch" not in i]
    item_schema = resolve(schema.get("items") or {})
    out = copy.deepcopy(target)
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {merge_key}")
        idx = next(
            (i for i, cur in enumerate(out) if isinstance(cur, dict) and cur.get(merge_key) == item[merge_key]), None
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append(strategic_merge({}, item, item_schema, resolve))
        else:
            out[idx] = strategic_merge(out[idx], item, item_schema, resolve)
    return out

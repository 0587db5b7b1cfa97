"""Strategic merge patch directives and server-side apply ownership (sans-I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from airlock.devstack.kube.apply import ApplyConflict, field_paths, record_update, server_side_apply
from airlock.devstack.kube.patch import PatchError, merge_patch, strategic_merge
from airlock.devstack.kube.schema import definition_for, unknown_fields

POD = definition_for("v1", "Pod")
DEPLOYMENT = definition_for("apps/v1", "Deployment")


def pod(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "x"}},
            "spec": {"containers": list(containers), "tolerations": [{"key": "a"}, {"key": "b"}]}}


def test_containers_merge_by_name_and_env_by_name() -> None:
    original = pod({"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
                   {"name": "b", "image": "b:1"})
    patch = {"spec": {"containers": [{"name": "a", "image": "a:2", "env": [{"name": "Y", "$patch": "delete"}]}]}}
    merged = strategic_merge(original, patch, POD)
    assert [c["name"] for c in merged["spec"]["containers"]] == ["a", "b"]
    assert merged["spec"]["containers"][0]["image"] == "a:2"
    assert merged["spec"]["containers"][0]["env"] == [{"name": "X", "value": "1"}]


def test_atomic_lists_are_replaced_and_null_deletes() -> None:
    merged = strategic_merge(pod({"name": "a", "image": "a"}),
                             {"spec": {"tolerations": [{"key": "c"}]}, "metadata": {"labels": {"app": None}}}, POD)
    assert merged["spec"]["tolerations"] == [{"key": "c"}]
    assert merged["metadata"]["labels"] == {}


def test_set_element_order_retain_keys_and_primitive_delete() -> None:
    original = pod({"name": "a", "image": "a"}, {"name": "b", "image": "b"})
    original["metadata"]["finalizers"] = ["x", "y"]
    patch = {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                      "containers": [{"name": "b", "image": "b2"}]},
             "metadata": {"$deleteFromPrimitiveList/finalizers": ["x"], "finalizers": ["z"]}}
    merged = strategic_merge(original, patch, POD)
    assert [c["name"] for c in merged["spec"]["containers"]] == ["b", "a"]
    assert merged["metadata"]["finalizers"] == ["y", "z"]
    strategy = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    recreated = strategic_merge(strategy, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
                                DEPLOYMENT)
    assert recreated["spec"]["strategy"] == {"type": "Recreate"}


def test_merge_key_missing_is_a_bad_request() -> None:
    with pytest.raises(PatchError) as raised:
        strategic_merge(pod({"name": "a", "image": "a"}), {"spec": {"containers": [{"image": "x"}]}}, POD)
    assert raised.value.code == 400


def test_json_merge_patch_rfc7386() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"b": None, "e": 3}, "d": [2]}) == \
        {"a": {"c": 2, "e": 3}, "d": [2]}


def test_unknown_fields_stop_at_free_form_subtrees() -> None:
    body = pod({"name": "a", "image": "a", "bogus": 1, "securityContext": {"anything": True}})
    body["spec"]["affinity"] = {"whatever": {"deep": 1}}
    body["extra"] = 1
    assert unknown_fields(POD, body) == ["spec.containers[0].bogus", "extra"]


def test_apply_conflicts_with_another_manager_unless_forced() -> None:
    live = pod({"name": "a", "image": "a:1"})
    record_update(None, live, "kubectl-edit", "v1", POD)
    applied = pod({"name": "a", "image": "a:2"})
    with pytest.raises(ApplyConflict) as raised:
        server_side_apply(live, applied, "ci", "v1", False, POD)
    assert [c.path for c in raised.value.conflicts] == ['.spec.containers[name="a"].image']
    forced = server_side_apply(live, applied, "ci", "v1", True, POD)
    assert forced["spec"]["containers"][0]["image"] == "a:2"
    managers = {e["manager"]: e for e in forced["metadata"]["managedFields"]}
    assert managers["ci"]["operation"] == "Apply"
    assert "f:image" not in str(managers["kubectl-edit"]["fieldsV1"])


def test_apply_removes_fields_the_manager_stopped_applying() -> None:
    first = server_side_apply(None, pod({"name": "a", "image": "a", "env": [{"name": "X", "value": "1"}]}),
                              "ci", "v1", False, POD)
    second = server_side_apply(first, pod({"name": "a", "image": "a"}), "ci", "v1", False, POD)
    assert "env" not in second["spec"]["containers"][0] or not second["spec"]["containers"][0]["env"]
    assert ("f:spec", "f:containers", 'k:{"name":"a"}', "f:image") in field_paths(second, POD)

"""Label/field selectors and request-info, as apimachinery parses them (sans-I/O)."""

from __future__ import annotations

import pytest

from airlock.devstack.kube.requestinfo import request_info
from airlock.devstack.kube.selectors import SelectorError, parse_field_selector, parse_label_selector


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "api"}, False),
        ("app!=web", {}, True),  # a missing label is "not equal"
        ("app in (web, api),tier", {"app": "api", "tier": "x"}, True),
        ("app notin (web)", {}, True),
        ("!canary", {"canary": "1"}, False),
        ("replicas>2", {"replicas": "3"}, True),
        ("replicas<2", {"replicas": "x"}, False),
        ("app=", {"app": ""}, True),
        ("", {"anything": "x"}, True),
    ],
)
def test_label_selector_semantics(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(selector).matches(labels) is expected


@pytest.mark.parametrize("bad", ["app in web", "a b", "app=x y", "bad key!=1", "app in ()", "x,", "a>b"])
def test_label_selector_errors(bad: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(bad)


def test_field_selector_supported_fields_and_escapes() -> None:
    selector = parse_field_selector(r"metadata.name=a\,b,status.phase!=Failed", lambda f: True)
    values = {"metadata.name": "a,b", "status.phase": "Running"}
    assert selector.matches(values.get)
    assert selector.names == {"a,b"}
    with pytest.raises(SelectorError, match=r"field label not supported: spec\.foo"):
        parse_field_selector("spec.foo=1", lambda f: f == "metadata.name")


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/default/pods", {}, ("list", "", "pods", "", "default", "")),
        ("GET", "/api/v1/namespaces/default/pods", {"watch": "1"}, ("watch", "", "pods", "", "default", "")),
        ("GET", "/api/v1/watch/namespaces/default/pods/web", {}, ("watch", "", "pods", "", "default", "web")),
        ("POST", "/api/v1/namespaces/default/pods/web/exec", {}, ("create", "", "pods", "exec", "default", "web")),
        ("DELETE", "/apis/apps/v1/namespaces/prod/deployments", {},
         ("deletecollection", "apps", "deployments", "", "prod", "")),
        ("GET", "/api/v1/namespaces/prod", {}, ("get", "", "namespaces", "", "prod", "prod")),
        ("PUT", "/api/v1/namespaces/prod/finalize", {}, ("update", "", "namespaces", "finalize", "prod", "prod")),
        ("GET", "/api/v1/pods", {"fieldSelector": "metadata.name=web"}, ("list", "", "pods", "", "", "web")),
    ],
)
def test_request_info(method: str, path: str, query: dict[str, str], expected: tuple[str, ...]) -> None:
    info = request_info(method, path, query)
    assert info.is_resource
    assert (info.verb, info.group, info.resource, info.subresource, info.namespace, info.name) == expected


@pytest.mark.parametrize("path", ["/version", "/api", "/apis", "/apis/apps", "/openapi/v3", "/healthz"])
def test_non_resource_paths(path: str) -> None:
    assert not request_info("GET", path, {}).is_resource

"""The gateway's request-info against the API server's RequestInfoFactory, case by case and under hypothesis."""

from __future__ import annotations

import string
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.k8s.requestinfo import TargetError, decode_target, exact_match, parse_query, request_info


def info(method: str, target: str) -> tuple[str, str, str, str, str, str, str, bool]:
    path, query = decode_target(target)
    i = request_info(method, path, query)
    return i.verb, i.group, i.version, i.resource, i.subresource, i.namespace, i.name, i.is_resource


@pytest.mark.parametrize(("method", "target", "expected"), [
    ("GET", "/api/v1/namespaces/default/pods", ("list", "", "v1", "pods", "", "default", "", True)),
    ("GET", "/api/v1/namespaces/default/pods/web", ("get", "", "v1", "pods", "", "default", "web", True)),
    ("HEAD", "/api/v1/pods/web", ("get", "", "v1", "pods", "", "", "web", True)),
    ("GET", "/api/v1/pods?watch=true", ("watch", "", "v1", "pods", "", "", "", True)),
    ("GET", "/api/v1/pods?watch=", ("watch", "", "v1", "pods", "", "", "", True)),  # empty is true in Go
    ("GET", "/api/v1/pods?watch=FaLsE", ("list", "", "v1", "pods", "", "", "", True)),
    ("GET", "/api/v1/pods?watch=0&watch=1", ("list", "", "v1", "pods", "", "", "", True)),  # the first value
    ("GET", "/api/v1/pods?watch=1;x=2", ("list", "", "v1", "pods", "", "", "", True)),  # ';' pairs dropped
    ("GET", "/api/v1/watch/namespaces/a/pods", ("watch", "", "v1", "pods", "", "a", "", True)),
    ("GET", "/api/v1/watch/namespaces/a/pods/x", ("watch", "", "v1", "pods", "", "a", "x", True)),
    ("DELETE", "/api/v1/namespaces/a/pods", ("deletecollection", "", "v1", "pods", "", "a", "", True)),
    ("DELETE", "/api/v1/namespaces/a/pods?fieldSelector=metadata.name%3Dx",
     ("deletecollection", "", "v1", "pods", "", "a", "", True)),  # names from selectors only for get
    ("POST", "/apis/apps/v1/namespaces/prod/deployments",
     ("create", "apps", "v1", "deployments", "", "prod", "", True)),
    ("PATCH", "/apis/apps/v1/namespaces/prod/deployments/web/scale",
     ("patch", "apps", "v1", "deployments", "scale", "prod", "web", True)),
    ("PUT", "/api/v1/namespaces/prod/finalize", ("update", "", "v1", "namespaces", "finalize", "prod", "prod", True)),
    ("GET", "/api/v1/namespaces/prod/status", ("get", "", "v1", "namespaces", "status", "prod", "prod", True)),
    ("DELETE", "/api/v1/namespaces/prod", ("delete", "", "v1", "namespaces", "", "prod", "prod", True)),
    ("POST", "/api/v1/namespaces", ("create", "", "v1", "namespaces", "", "", "", True)),
    ("POST", "/api/v1/namespaces/a/pods/x/exec?command=ls", ("create", "", "v1", "pods", "exec", "a", "x", True)),
    ("GET", "/api/v1/namespaces/a/pods/x/exec?command=ls", ("get", "", "v1", "pods", "exec", "a", "x", True)),
    ("GET", "/api/v1/namespaces/a/pods/x/log?follow=true", ("get", "", "v1", "pods", "log", "a", "x", True)),
    ("POST", "/api/v1/namespaces/a/serviceaccounts/b/token",
     ("create", "", "v1", "serviceaccounts", "token", "a", "b", True)),
    ("GET", "/api/v1/proxy/namespaces/a/pods/x/y/z", ("proxy", "", "v1", "pods", "", "a", "x", True)),
    ("GET", "/api/v1/namespaces/a/pods/x%2Fexec", ("get", "", "v1", "pods", "exec", "a", "x", True)),  # decoded
    ("OPTIONS", "/api/v1/pods", ("", "", "v1", "pods", "", "", "", True)),
    ("GET", "/api", ("get", "", "", "", "", "", "", False)),
    ("GET", "/api/v1", ("get", "", "", "", "", "", "", False)),
    ("GET", "/apis/apps/v1", ("get", "", "", "", "", "", "", False)),
    ("GET", "/openapi/v3/apis/apps/v1?hash=x", ("get", "", "", "", "", "", "", False)),
    ("POST", "/healthz", ("post", "", "", "", "", "", "", False)),
])  # fmt: skip
def test_request_info_as_the_api_server_reads_it(method: str, target: str, expected: tuple[object, ...]) -> None:
    assert info(method, target) == expected


@pytest.mark.parametrize(("selector", "name"), [
    ("metadata.name=web", "web"),
    ("metadata.name==web", "web"),
    ("metadata.name!=web", ""),
    ("status.phase=Running,metadata.name=web", "web"),
    ("metadata.name=b,metadata.name=a", "a"),  # terms are sorted: the first after sorting wins
    ("metadata.name=a\\,b", "a,b"),  # escaped: a valid selector and a valid path segment name
    ("metadata.name=x/y", ""),  # not a valid path segment name
    ("metadata.name=..", ""),
    ("metadata.name=a=b", ""),  # an unescaped '=' in a value: the selector does not parse
    ("metadata.name=a\\q", ""),  # an unknown escape
    ("nonsense", ""),
])  # fmt: skip
def test_a_name_from_a_field_selector(selector: str, name: str) -> None:
    i = request_info("GET", "/api/v1/namespaces/a/secrets", {"fieldSelector": [selector]})
    assert (i.verb, i.name) == ("list", name)


def test_list_options_that_do_not_decode_carry_no_name() -> None:
    query = {"fieldSelector": ["metadata.name=web"], "limit": ["ten"]}
    assert request_info("GET", "/api/v1/namespaces/a/pods", query).name == ""
    query = {"fieldSelector": ["metadata.name=web"], "timeoutSeconds": ["99999999999999999999"]}
    assert request_info("GET", "/api/v1/namespaces/a/pods", query).name == ""
    # When they do not decode, watch is compared lower-cased (the fallback), not EqualFold.
    long_s = "fal\N{LATIN SMALL LETTER LONG S}e"  # EqualFold(long_s, "false") in Go; not lower-case equal
    falsy = {"watch": [long_s]}
    assert request_info("GET", "/api/v1/pods", falsy).verb == "list"
    assert request_info("GET", "/api/v1/pods", {**falsy, "limit": ["x"]}).verb == "watch"


def test_exact_match_helper() -> None:
    assert exact_match("", "metadata.name") is None
    assert exact_match("metadata.namespace=a", "metadata.name") is None
    with pytest.raises(ValueError):
        exact_match("metadata.name=\\", "metadata.name")


def test_a_special_verb_without_a_resource_is_the_api_servers_error() -> None:
    path, query = decode_target("/api/v1/watch")
    assert request_info("GET", path, query).error


def test_targets_go_refuses() -> None:
    with pytest.raises(TargetError):
        decode_target("/api/v1/pods/a%zz")
    with pytest.raises(TargetError):
        decode_target("api/v1/pods")
    assert parse_query("a=%zz&b=1&c=1;2&d=x+y") == {"b": ["1"], "d": ["x y"]}


# ---------------------------------------------------------------------- hypothesis

SEGMENT = st.text(alphabet=string.ascii_lowercase + string.digits + "-.", min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..") and s not in ("watch", "proxy", "namespaces", "status", "finalize"))
METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "BREW"])


@given(method=METHODS, raw=st.text(max_size=200), query=st.dictionaries(st.text(max_size=20),
       st.lists(st.text(max_size=30), max_size=3), max_size=4))  # fmt: skip
@settings(max_examples=400, deadline=None)
def test_any_input_gives_an_answer_or_a_clear_error(method: str, raw: str, query: dict[str, list[str]]) -> None:
    try:
        path, parsed = decode_target("/" + raw)
    except TargetError:
        return
    i = request_info(method, path, {**parsed, **query})
    assert isinstance(i.verb, str)
    assert i.is_resource or not (i.resource or i.name or i.namespace)


MAYBE = st.one_of(st.just(""), SEGMENT)


@given(method=METHODS, group=MAYBE, version=SEGMENT, namespace=MAYBE, resource=SEGMENT, name=MAYBE,
       subresource=MAYBE, watch=st.booleans())  # fmt: skip
@settings(max_examples=400, deadline=None)
def test_paths_built_from_parts_read_back_as_those_parts(
    method: str, group: str, version: str, namespace: str, resource: str, name: str, subresource: str, watch: bool
) -> None:
    if subresource and not name:
        subresource = ""
    prefix = f"/apis/{quote(group)}/{version}" if group else f"/api/{version}"
    path = prefix + (f"/namespaces/{namespace}" if namespace else "") + f"/{resource}"
    path += (f"/{name}" if name else "") + (f"/{subresource}" if subresource else "")
    decoded, query = decode_target(path + ("?watch=1" if watch else ""))
    i = request_info(method, decoded, query)
    assert (i.group, i.version, i.namespace, i.resource, i.name, i.subresource) == \
        (group, version, namespace, resource, name, subresource)  # fmt: skip
    verbs = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    expected = verbs.get(method, "")
    if not name and expected == "get":
        expected = "watch" if watch else "list"
    if not name and expected == "delete":
        expected = "deletecollection"
    assert i.verb == expected

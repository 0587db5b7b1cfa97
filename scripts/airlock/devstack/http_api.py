"""A local API Gateway HTTP API: HTTP requests in, payload-format-2.0 events to the real handlers, out again.

Routes are the template's ``HttpApi`` events (``Method`` + ``Path``; ``{name}`` and ``{name+}`` path
parameters). Each request becomes the event API Gateway sends a Lambda proxy integration: ``version``
"2.0", ``routeKey``, ``rawPath``, ``rawQueryString``, ``headers`` (names lower-cased, repeated values
joined by commas), ``queryStringParameters``, ``pathParameters``, ``cookies``, ``requestContext``
(``http.method/path/protocol/sourceIp/userAgent``, ``requestId``, ``routeKey``, stage ``$default``,
``time``, ``timeEpoch``), and ``body``: as text for text-like content types, otherwise base64 with
``isBase64Encoded`` (which is how a Slack form post arrives). The handler's result maps back as API
Gateway maps it: a dict with ``statusCode`` gives status, headers, cookies and body (base64-decoded if
flagged); any other JSON value is a 200 ``application/json`` body. No route: 404 ``{"message":"Not
Found"}``; a handler error: 500 ``{"message":"Internal Server Error"}``; a timeout: 503.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web

from airlock.devstack.provision import LambdaFunction, StackResources

if TYPE_CHECKING:
    from airlock.devstack.lambda_endpoint import Functions

_log = logging.getLogger(__name__)
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")
_MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit


def _match(template: str, path: str) -> dict[str, str] | None:
    """Path parameters if ``path`` matches the route ``template``, else None."""
    want, have = template.strip("/").split("/"), path.strip("/").split("/")
    params: dict[str, str] = {}
    for i, part in enumerate(want):
        if part.startswith("{") and part.endswith("+}"):
            params[part[1:-2]] = "/".join(have[i:])
            return params if have[i:] else None
        if i >= len(have):
            return None
        if part.startswith("{") and part.endswith("}"):
            params[part[1:-1]] = have[i]
        elif part != have[i]:
            return None
    return params if len(have) == len(want) else None


def api_gateway_event(
    method: str,
    path: str,
    *,
    query: str = "",
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    route_key: str | None = None,
    path_parameters: Mapping[str, str] | None = None,
    source_ip: str = "127.0.0.1",
    host: str = "localhost",
    account_id: str = "123456789012",
) -> dict[str, Any]:
    """The payload-2.0 event API Gateway's HTTP API sends a Lambda for this request."""
    merged: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    merged.setdefault("host", host)
    now = datetime.now(UTC)
    text_like = not body or merged.get("content-type", "").startswith(_TEXT_TYPES)
    parameters: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        parameters[key] = f"{parameters[key]},{value}" if key in parameters else value
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key or f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": merged,
        "requestContext": {
            "accountId": account_id,
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key or f"{method} {path}",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": not text_like,
    }
    if parameters:
        event["queryStringParameters"] = parameters
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if "cookie" in merged:
        event["cookies"] = [c.strip() for c in merged["cookie"].split(";")]
    if body:
        event["body"] = body.decode("utf-8", "replace") if text_like else base64.b64encode(body).decode()
    return event


def _response(result: Any) -> web.Response:
    if isinstance(result, dict) and "statusCode" in result:
        body = result.get("body") or ""
        raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
        response = web.Response(status=int(result["statusCode"]), body=raw)
        for name, value in (result.get("headers") or {}).items():
            response.headers[name] = str(value)
        for name, values in (result.get("multiValueHeaders") or {}).items():
            for value in values:
                response.headers.add(name, str(value))
        for cookie in result.get("cookies") or []:
            response.headers.add("Set-Cookie", cookie)
        return response
    return web.json_response(result)


def create_http_api_app(
    resources: StackResources, functions: Functions, executor: ThreadPoolExecutor
) -> web.Application:
    """The aiohttp application serving every ``HttpApi`` route of ``resources``' functions."""
    from airlock.devstack.lambda_endpoint import LambdaContext

    routes: list[tuple[str, str, LambdaFunction]] = [
        (method, path, function)
        for function in resources.functions.values()
        for _, method, path in function.http_routes
    ]

    async def handle(request: web.Request) -> web.StreamResponse:
        found = [(m, p, f, params) for m, p, f in routes
                 if m in (request.method, "ANY") and (params := _match(p, request.path)) is not None]  # fmt: skip
        if not found:
            return web.json_response({"message": "Not Found"}, status=404)
        method, path, function, params = found[0]
        event = api_gateway_event(
            request.method, request.path, query=request.query_string, headers=request.headers.items(),
            body=await request.read(), route_key=f"{method} {path}", path_parameters=params,
            source_ip=request.remote or "127.0.0.1", host=request.host, account_id=resources.account_id,
        )  # fmt: skip
        context = LambdaContext(
            function_name=function.name, invoked_function_arn=function.arn,
            memory_limit_in_mb=function.memory_mb, aws_request_id=event["requestContext"]["requestId"],
            deadline=time.monotonic() + function.timeout_seconds, log_group_name=f"/aws/lambda/{function.name}",
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(executor, functions.invoke, function, event, context)
        try:
            payload = await asyncio.wait_for(asyncio.shield(future), timeout=function.timeout_seconds)
        except TimeoutError:
            return web.json_response({"message": "Service Unavailable"}, status=503)
        except Exception:
            _log.exception("%s failed on %s %s", function.name, request.method, request.path)
            return web.json_response({"message": "Internal Server Error"}, status=500)
        return _response(json.loads(payload))

    app = web.Application(client_max_size=_MAX_BODY)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app

"""A local endpoint that speaks the Lambda Invoke API and runs the real handlers of ``template.yaml``.

``POST /2015-03-31/functions/{FunctionName}/invocations`` behaves like Lambda for what Airlock uses:
RequestResponse (200 with the handler's JSON result), Event (202, run in the background), DryRun (204);
a handler exception is a 200 with ``X-Amz-Function-Error: Unhandled`` and Lambda's error document; an
unknown function is a 404 ``ResourceNotFoundException``. Point boto3 at it with
``AWS_ENDPOINT_URL_LAMBDA``; request signatures are not checked.

Handlers are imported lazily (CodeUri ``functions/authorize/``, handler ``app.handler`` -> module
``functions.authorize.app``, see ``_module_name``) and run in a thread pool so a slow handler never
blocks the endpoint. Layers need nothing here: ``shared/`` is importable from the repository already.
Lambda gives each function its own process and environment; here all functions share this process,
so the union of their template environments is put into ``os.environ`` once, at start-up. Functions
whose templates disagree on a variable cannot share one endpoint (``start`` refuses). The variable
``AWS_LAMBDA_FUNCTION_NAME`` is deliberately not set: powertools would then think it runs in Lambda and
try to reach an X-Ray daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from airlock.devstack.provision import LambdaFunction, StackResources, provision

_log = logging.getLogger(__name__)

_MAX_PAYLOAD = 6 * 1024 * 1024  # Lambda's synchronous invocation limit
Handler = Callable[[Any, "LambdaContext"], Any]


@dataclass(slots=True)
class LambdaContext:
    """The subset of Lambda's context object that handlers and powertools read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    deadline: float  # time.monotonic() at which Lambda would time the invocation out
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class _RuntimeFailure(Exception):
    """A failure Lambda's runtime reports under its own error type (import errors, marshalling)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _error_document(error: BaseException, request_id: str) -> dict[str, Any]:
    error_type = error.error_type if isinstance(error, _RuntimeFailure) else type(error).__name__
    return {
        "errorMessage": str(error),
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": traceback.format_list(traceback.extract_tb(error.__traceback__)),
    }


@dataclass
class Functions:
    """Functions by name, their handlers imported on first use."""

    by_name: Mapping[str, LambdaFunction]
    _handlers: dict[str, Handler] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def find(self, name_or_arn: str) -> LambdaFunction | None:
        # Accept a name, a full ARN, or a partial ARN ("123456789012:function:name"), with a qualifier.
        parts = name_or_arn.split(":")
        name = parts[parts.index("function") + 1] if "function" in parts[:-1] else parts[0]
        return self.by_name.get(name)

    def handler(self, function: LambdaFunction) -> Handler:
        with self._lock:
            if function.name not in self._handlers:
                self._handlers[function.name] = _import_handler(function)
            return self._handlers[function.name]

    def invoke(self, function: LambdaFunction, event: Any, context: LambdaContext) -> bytes:
        result = self.handler(function)(event, context)
        try:
            return json.dumps(result).encode()
        except (TypeError, ValueError) as e:
            raise _RuntimeFailure("Runtime.MarshalError", f"Unable to marshal response: {e}") from e


def _module_name(code_root: Path, module_path: str) -> tuple[Path, str]:
    """Where to import a handler module from, and under which name.

    A CodeUri that is itself a package (``functions/authorize/`` with an ``__init__.py``) is imported
    from the first directory above it that is not one, under its full dotted name
    (``functions.authorize.app``): the name tests and tools import it by, so one process never holds
    two copies of the module. Elsewhere the CodeUri is the import root, as in Lambda."""
    root, parts = code_root, module_path.split("/")
    while (root / "__init__.py").exists():
        root, parts = root.parent, [root.name, *parts]
    return root, ".".join(parts)


def _import_handler(function: LambdaFunction) -> Handler:
    module_path, _, attribute = function.handler.rpartition(".")
    root, module_name = _module_name(function.code_root, module_path)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise _RuntimeFailure("Runtime.ImportModuleError", f"Unable to import module '{module_path}': {e}") from e
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise _RuntimeFailure("Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_path}'")
    return handler  # type: ignore[no-any-return]


def _aws_error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response(
        {"Type": "User", "message": message}, status=status, headers={"x-amzn-ErrorType": error_type}
    )


def create_app(
    resources: StackResources, executor: ThreadPoolExecutor, functions: Functions | None = None
) -> web.Application:
    """The aiohttp application serving ``resources``' functions through ``executor``."""
    functions = functions or Functions(resources.functions)
    background: set[asyncio.Future[bytes]] = set()

    async def invoke(request: web.Request) -> web.StreamResponse:
        function = functions.find(request.match_info["name"])
        if function is None:
            arn = f"arn:aws:lambda:{resources.region}:{resources.account_id}:function:{request.match_info['name']}"
            return _aws_error(404, "ResourceNotFoundException", f"Function not found: {arn}")
        body = await request.read()
        try:
            event = json.loads(body) if body else {}
        except ValueError as e:
            return _aws_error(400, "InvalidRequestContentException", f"Could not parse request body: {e}")
        invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type == "DryRun":
            return web.Response(status=204)
        request_id = str(uuid.uuid4())
        context = LambdaContext(
            function_name=function.name,
            invoked_function_arn=function.arn,
            memory_limit_in_mb=function.memory_mb,
            aws_request_id=request_id,
            deadline=time.monotonic() + function.timeout_seconds,
            log_group_name=f"/aws/lambda/{function.name}",
        )
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(executor, functions.invoke, function, event, context)
        headers = {"x-amzn-RequestId": request_id, "X-Amz-Executed-Version": "$LATEST"}
        if invocation_type == "Event":
            background.add(future)
            future.add_done_callback(_log_event_failure(function.name, background))
            return web.Response(status=202, headers=headers)
        if invocation_type != "RequestResponse":
            return _aws_error(400, "InvalidParameterValueException", f"bad invocation type {invocation_type}")
        try:
            payload = await asyncio.wait_for(asyncio.shield(future), timeout=function.timeout_seconds)
        except TimeoutError:
            # Lambda would kill the sandbox; a thread cannot be killed, so it finishes unobserved.
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            error: dict[str, Any] = {
                "errorMessage": f"{stamp} {request_id} Task timed out after {function.timeout_seconds:.2f} seconds",
                "errorType": "Sandbox.Timedout",
            }
            return _function_error(error, headers)
        except Exception as e:
            return _function_error(_error_document(e, request_id), headers)
        return web.Response(body=payload, content_type="application/json", headers=headers)

    app = web.Application(client_max_size=_MAX_PAYLOAD)
    app.router.add_post("/2015-03-31/functions/{name}/invocations", invoke)
    return app


def _function_error(document: dict[str, Any], headers: Mapping[str, str]) -> web.Response:
    return web.json_response(document, headers={**headers, "X-Amz-Function-Error": "Unhandled"})


def _log_event_failure(name: str, background: set[asyncio.Future[bytes]]) -> Callable[[asyncio.Future[bytes]], None]:
    def done(future: asyncio.Future[bytes]) -> None:
        background.discard(future)
        if not future.cancelled() and (error := future.exception()) is not None:
            _log.error("async invocation of %s failed", name, exc_info=error)

    return done


def shared_environment(resources: StackResources) -> dict[str, str]:
    """The union of all functions' environments; refuses variables on which they disagree."""
    merged: dict[str, str] = {}
    for function in resources.functions.values():
        for key, value in function.environment.items():
            if merged.setdefault(key, value) != value:
                raise ValueError(f"functions disagree on {key}; serve them from separate endpoints")
    return merged


@dataclass
class LambdaEndpoint:
    """A Lambda endpoint running on its own event loop thread (for tests and the local stack)."""

    url: str
    _loop: asyncio.AbstractEventLoop
    _runner: web.AppRunner
    _thread: threading.Thread
    _executor: ThreadPoolExecutor
    _saved_environment: dict[str, str | None]
    _resources: StackResources
    _functions: Functions
    _more_runners: list[web.AppRunner] = field(default_factory=list)

    def serve_http_api(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Also serve the template's HTTP API routes (payload 2.0 events, same handlers); returns its URL."""
        from .http_api import create_http_api_app

        runner = web.AppRunner(create_http_api_app(self._resources, self._functions, self._executor), access_log=None)
        url = asyncio.run_coroutine_threadsafe(_start_site(runner, host, port), self._loop).result(timeout=10)
        self._more_runners.append(runner)
        return url

    def stop(self) -> None:
        """Stop serving and restore the environment variables that start-up replaced."""
        for runner in self._more_runners:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result(timeout=10)
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._executor.shutdown(wait=False, cancel_futures=True)
        for key, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start_lambda_endpoint(
    resources: StackResources, host: str = "127.0.0.1", port: int = 0, *, apply_environment: bool = True
) -> LambdaEndpoint:
    """Serve ``resources``' functions in a background thread; ``port=0`` picks a free port."""
    environment = shared_environment(resources) if apply_environment else {}
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="lambda")
    loop = asyncio.new_event_loop()
    functions = Functions(resources.functions)
    runner = web.AppRunner(create_app(resources, executor, functions), access_log=None)
    thread = threading.Thread(target=loop.run_forever, name="lambda-endpoint", daemon=True)
    thread.start()
    url = asyncio.run_coroutine_threadsafe(_start_site(runner, host, port), loop).result(timeout=10)
    return LambdaEndpoint(url, loop, runner, thread, executor, saved, resources, functions)


async def _start_site(runner: web.AppRunner, host: str, port: int) -> str:
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound_host, bound_port = runner.addresses[0][:2]
    return f"http://{bound_host}:{bound_port}"


async def _serve(resources: StackResources, host: str, port: int) -> None:
    os.environ.update(shared_environment(resources))
    with ThreadPoolExecutor(max_workers=32, thread_name_prefix="lambda") as executor:
        runner = web.AppRunner(create_app(resources, executor))
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        # One parseable line, so whoever started us learns the port when it asked for port 0.
        print(f"AIRLOCK_LAMBDA_ENDPOINT=http://{bound_host}:{bound_port}", flush=True)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        try:
            await stopping.wait()
        finally:
            await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m airlock.devstack.lambda_endpoint --template template.yaml --stack airlock-dev``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--template", default="template.yaml")
    parser.add_argument("--stack", required=True, help="stack name the resources were provisioned under")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    parameters = dict(item.split("=", 1) for item in args.parameter)
    # provision() is idempotent: against an existing stack it only looks the resources up (and it
    # creates them if this endpoint happens to start first).
    resources = provision(args.template, args.stack, parameters)
    asyncio.run(_serve(resources, args.host, args.port))


if __name__ == "__main__":
    main()

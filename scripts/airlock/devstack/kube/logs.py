"""``pods/<name>/log``: a container's log as plain text, whole or followed (``follow=true``).

Options as the API server's PodLogOptions: ``container``, ``timestamps``, ``tailLines``, ``sinceSeconds``/
``sinceTime``, ``limitBytes``, ``previous``. A followed log streams new lines (the file is polled) until the
client goes away or the pod is deleted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from multidict import MultiMapping

from .status import ApiError, Cause, bad_request

POLL_SECONDS = 0.2


def _int(query: MultiMapping[str], name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as e:
        raise bad_request(f'invalid value "{value}" for {name}') from e


def _invalid(pod: str, field: str, value: object, detail: str) -> ApiError:
    cause = Cause("FieldValueInvalid", f"Invalid value: {value}: {detail}", field)
    return ApiError(422, "Invalid", f'PodLogOptions "{pod}" is invalid: {field}: {cause.message}',
                    {"name": pod, "kind": "PodLogOptions", "causes": [cause.to_json()]})


def _parse(line: str) -> tuple[dt.datetime | None, str, str]:
    stamp, _, text = line.partition(" ")
    try:
        when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None, "", line
    return when, stamp, text


def _render(line: str, timestamps: bool, since: dt.datetime | None) -> str | None:
    when, stamp, text = _parse(line)
    if since is not None and when is not None and when < since:
        return None
    return f"{stamp} {text}\n" if timestamps and stamp else f"{text}\n"


def _read_from(path: Path, offset: int) -> bytes | None:
    """The log's bytes after ``offset`` (a small local file), or None once it is gone."""
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read()
    except FileNotFoundError:
        return None


async def serve(request: web.Request, pod: str, container: str, log_path: Path,
                alive: Callable[[], bool]) -> web.StreamResponse:
    query = request.query
    if query.get("previous") in ("true", "1"):
        raise bad_request(f'previous terminated container "{container}" in pod "{pod}" not found')
    timestamps = query.get("timestamps") in ("true", "1")
    follow = query.get("follow") in ("true", "1")
    tail, limit, since_seconds = _int(query, "tailLines"), _int(query, "limitBytes"), _int(query, "sinceSeconds")
    if tail is not None and tail < 0:
        raise _invalid(pod, "tailLines", tail, "must be greater than or equal to 0")
    if limit is not None and limit < 1:
        raise _invalid(pod, "limitBytes", limit, "must be greater than 0")
    if since_seconds is not None and since_seconds < 1:
        raise _invalid(pod, "sinceSeconds", since_seconds, "must be greater than 0")
    since: dt.datetime | None = None
    if since_seconds is not None:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=since_seconds)
    elif query.get("sinceTime"):
        try:
            since = dt.datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00"))
        except ValueError as e:
            raise bad_request(f'invalid value "{query["sinceTime"]}" for sinceTime') from e

    content = _read_from(log_path, 0) or b""
    offset = len(content)
    lines = content.decode(errors="replace").splitlines()
    if tail is not None:
        lines = lines[len(lines) - tail:] if tail else []
    rendered = "".join(r for line in lines if (r := _render(line, timestamps, since)) is not None).encode()
    remaining = limit
    if remaining is not None:
        rendered = rendered[:remaining]
        remaining -= len(rendered)

    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    if not follow:
        response.content_length = len(rendered)
    await response.prepare(request)
    await response.write(rendered)
    if follow:
        partial = b""
        while (remaining is None or remaining > 0) and alive():
            await asyncio.sleep(POLL_SECONDS)
            fresh = _read_from(log_path, offset)
            if fresh is None:
                break
            offset += len(fresh)
            partial += fresh
            *complete, partial = partial.split(b"\n")
            if not complete:
                continue
            chunk = "".join(r for line in complete
                            if (r := _render(line.decode(errors="replace"), timestamps, since)) is not None).encode()
            if remaining is not None:
                chunk = chunk[:remaining]
                remaining -= len(chunk)
            await response.write(chunk)
    await response.write_eof()
    return response

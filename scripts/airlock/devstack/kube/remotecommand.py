"""What every exec transport shares: the request's options, starting the process, the final Status.

The transports (WebSocket ``v5``/``v4.channel.k8s.io`` in :mod:`.exec_ws`, SPDY/3.1 in :mod:`.exec_spdy`)
only move bytes between their streams and a :class:`~.containers.ContainerProcess`. When the process ends,
the error stream carries a metav1.Status as the kubelet writes it for protocol v4 and later: Success, or
Failure with reason NonZeroExitCode and an ExitCode cause (kubectl exits with that code), or an
InternalError when the command could not be started.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from multidict import MultiMapping

from .status import bad_request

Obj = dict[str, Any]
STREAM_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
_TRUE = ("1", "true", "True", "TRUE", "t", "T")


@dataclass(frozen=True, slots=True)
class ExecOptions:
    command: tuple[str, ...]
    container: str
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def exec_options(query: MultiMapping[str], pod: Obj) -> ExecOptions:
    """Parse and check ``pods/<name>/exec`` parameters against the pod, as the API server does."""
    command = tuple(query.getall("command", []))
    if not command:
        raise bad_request("you must specify at least one command for the container")
    stdin, stdout, stderr, tty = (query.get(k, "") in _TRUE for k in ("stdin", "stdout", "stderr", "tty"))
    if tty and stderr:
        stderr = False  # the kubelet bypasses stderr with a tty
    if not (stdin or stdout or stderr):
        raise bad_request("you must specify at least 1 of stdin, stdout, stderr")
    return ExecOptions(command, pick_container(pod, query.get("container", "")), stdin, stdout, stderr, tty)


def pick_container(pod: Obj, requested: str) -> str:
    names = [str(c.get("name")) for c in pod.get("spec", {}).get("containers") or []]
    name = pod["metadata"]["name"]
    if requested:
        if requested not in names:
            raise bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(names) == 1:
        return names[0]
    raise bad_request(f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]")


def exit_status(code: int) -> Obj:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def start_failure_status(message: str) -> Obj:
    text = f"error executing command in container: {message}"
    return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {text}",
            "reason": "InternalError", "details": {"causes": [{"message": text}]}, "code": 500}


def encode_status(status: Obj) -> bytes:
    return json.dumps(status, separators=(",", ":")).encode()


def parse_resize(data: bytes) -> list[tuple[int, int]]:
    """TerminalSize JSON objects ({"Width":..,"Height":..}), possibly several back to back."""
    sizes: list[tuple[int, int]] = []
    decoder = json.JSONDecoder()
    text = data.decode(errors="replace").strip()
    position = 0
    while position < len(text):
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            break
        if isinstance(value, dict):
            sizes.append((int(value.get("Width", 0) or 0), int(value.get("Height", 0) or 0)))
        position = end
        while position < len(text) and text[position].isspace():
            position += 1
    return sizes


def negotiate(offered: list[str]) -> str:
    """The first of the client's protocols the stand-in speaks (client order), or ``""``."""
    return next((p for p in offered if p in STREAM_PROTOCOLS), "")


def split_header(values: list[str]) -> list[str]:
    return [p.strip() for v in values for p in v.split(",") if p.strip()]

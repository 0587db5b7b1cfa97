"""Drive the Kubernetes stand-in with real clients: kubectl v1.36 and v1.20, raw HTTPS, a terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPResponse
from pathlib import Path
from typing import Any

from airlock.devstack.kube import KubeStandin
from airlock.devstack.kubectl import ensure_debian_kubectl, ensure_kubectl


@dataclass
class Kubectl:
    binary: Path
    kubeconfig: Path

    def run(self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args], input=stdin, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.kubeconfig.parent),
                 **(env or {})},
        )

    def ok(self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
        result = self.run(*args, stdin=stdin, env=env)
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
        return result.stdout

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([str(self.binary), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env={**os.environ, "KUBECONFIG": str(self.kubeconfig),
                                                "HOME": str(self.kubeconfig.parent)})

    def in_terminal(self, *args: str, typed: bytes, rows: int = 33, cols: int = 101,
                    timeout: float = 20) -> tuple[int, str]:
        """Run kubectl on a pseudo-terminal of rows x cols, type ``typed``, collect the screen output."""
        import fcntl
        import struct
        import termios

        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        process = subprocess.Popen([str(self.binary), *args], stdin=slave, stdout=slave, stderr=slave,
                                   start_new_session=True,
                                   env={**os.environ, "KUBECONFIG": str(self.kubeconfig),
                                        "HOME": str(self.kubeconfig.parent)})
        os.close(slave)
        output = b""
        deadline = time.monotonic() + timeout
        sent = False
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.2)
                if ready:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:
                        break
                    if not chunk:
                        break
                    output += chunk
                if not sent and (b"#" in output or b"$" in output):
                    os.write(master, typed)
                    sent = True
                if process.poll() is not None and not ready:
                    break
            return process.wait(timeout=5), output.decode(errors="replace")
        finally:
            if process.poll() is None:
                process.kill()
            os.close(master)


class KubeWire:
    """Raw HTTPS to the stand-in, for what no CLI shows (content types, watch events, bookmarks)."""

    def __init__(self, standin: KubeStandin, role: str = "admin") -> None:
        self.url = standin.url
        self.token = standin.tokens[role]
        self.context = ssl.create_default_context(cafile=str(standin.ca))

    def request(self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float = 10) -> HTTPResponse:
        request = urllib.request.Request(self.url + path, data=body, method=method,
                                         headers={"Authorization": f"Bearer {self.token}", **(headers or {})})
        try:
            response: HTTPResponse = urllib.request.urlopen(request, context=self.context, timeout=timeout)
        except urllib.error.HTTPError as e:
            return e  # type: ignore[return-value]
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        response = self.request(method, path, **kwargs)
        return response.status, json.loads(response.read() or b"null")

    def events(self, path: str, timeout: float = 10) -> Iterator[dict[str, Any]]:
        response = self.request("GET", path, timeout=timeout)
        assert response.status == 200, response.read()
        while line := response.readline():
            yield json.loads(line)


def kubectl_136() -> Path:
    return ensure_kubectl()


def kubectl_120() -> Path:
    return ensure_debian_kubectl()

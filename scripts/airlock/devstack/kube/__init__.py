"""A local stand-in for the Kubernetes API server (no real one can be installed on these machines).

It is not Kubernetes: an aiohttp server speaking the API's documented wire behaviour for the resources the
gateway is tested with, so kubectl (v1.36 and Debian's v1.20), client-go and the Python ``kubernetes``
client work against it unchanged. Start it with :func:`start_kube_standin` (a subprocess, like the proxy)
or ``python -m airlock.devstack.kube --state-dir DIR --port N``.

Served (see each module for the details):

- discovery: ``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/apps[/v1]``, aggregated discovery
  (apidiscovery.k8s.io v2 and v2beta1, with ETag); ``/openapi/v2`` (JSON and gnostic protobuf) and
  ``/openapi/v3`` (index and per group-version documents);
- namespaces, pods, secrets, configmaps, serviceaccounts (and ``serviceaccounts/<n>/token``), deployments
  (apps/v1): get, list, watch, create, update, patch (JSON patch, merge patch, strategic merge patch,
  server-side apply with managedFields and conflicts), delete, deletecollection; resourceVersion and
  optimistic concurrency, label and field selectors, limit/continue, ``dryRun=All``, ``fieldValidation``,
  Table and PartialObjectMetadata conversions, Status errors as the API server shapes them;
- watch: chunked JSON events, from a resourceVersion (410 Expired when too old), bookmarks,
  ``sendInitialEvents``, ``timeoutSeconds``;
- ``pods/log`` (plain text, ``follow``) and ``pods/exec`` over WebSocket (``v5.channel.k8s.io``,
  ``v4.channel.k8s.io``) and SPDY/3.1 (what kubectl v1.20 speaks and v1.36 falls back to), running a real
  process in the pod's scratch directory, with a pty for ``tty=true``;
- TLS with the local stack's dev CA; bearer tokens (static ones from ``tokens.json``, and ServiceAccount
  tokens the stand-in issued); impersonation headers honoured for identities allowed to impersonate and
  recorded in the audit log (``<state>/audit.log``, audit.k8s.io/v1 events); a small rule-based
  authorization (:mod:`.auth`), answerable through SelfSubjectReview and SelfSubjectAccessReview
  (``kubectl auth whoami``, ``kubectl auth can-i``);
- request bodies in JSON, YAML and protobuf (kubectl's typed clients send protobuf; the decoder,
  :mod:`shared.k8s.protobuf`, is the gateway's too).

Deliberately left out: protobuf and CBOR responses (negotiated away: clients that also accept JSON get JSON,
as from a server that cannot encode a type as protobuf; protobuf-only clients get 406), controllers (no
ReplicaSets; pods are Running at once; deployment status reports every replica available), finalizers and
graceful deletion (objects go at once), the ``status``/``scale`` subresources, attach, port-forward, proxy,
WebSocket watches, list snapshots for ``continue`` (later pages read current state), and every other resource
type (404).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .containers import ContainerRoots

__all__ = ["KubeStandin", "start_kube_standin"]

ROOT = Path(__file__).resolve().parents[4]


@dataclass
class KubeStandin:
    """A running stand-in: where it listens, its CA, its static tokens (by role), its state directory."""

    state_dir: Path
    url: str
    ca: Path
    process: subprocess.Popen[bytes] | None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def kubeconfig(self, path: Path, role: str = "admin", namespace: str = "default") -> Path:
        """Write a kubeconfig for this stand-in as the identity behind ``role``'s token."""
        config: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "airlock-standin", "cluster": {"server": self.url,
                                                                   "certificate-authority": str(self.ca)}}],
            "users": [{"name": role, "user": {"token": self.tokens[role]}}],
            "contexts": [{"name": f"standin-{role}", "context": {"cluster": "airlock-standin", "user": role,
                                                                 "namespace": namespace}}],
            "current-context": f"standin-{role}",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def audit_events(self) -> list[dict[str, Any]]:
        """The audit events written so far (one per request), oldest first."""
        log = self.state_dir / "audit.log"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    def append_log(self, namespace: str, pod: str, container: str, *lines: str) -> None:
        """Append lines to a container's log, as if the container printed them."""
        ContainerRoots(self.state_dir / "pods").append_log(namespace, pod, container, *lines)

    def stop(self, timeout: float = 10) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_kube_standin(state_dir: Path, port: int = 0, *, host: str = "127.0.0.1", tls_dir: Path | None = None,
                       bookmark_interval: float = 60.0, timeout: float = 20) -> KubeStandin:
    """Start the stand-in as a subprocess (state in ``state_dir``; port 0 picks a free one) and wait until it
    serves. ``tls_dir`` shares the local stack's dev CA (default: ``<state_dir>/tls``)."""
    from ..stack import free_port

    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    ready = state_dir / "server.json"
    ready.unlink(missing_ok=True)
    command = [sys.executable, "-m", "airlock.devstack.kube", "--state-dir", str(state_dir), "--host", host,
               "--port", str(port), "--bookmark-interval", str(bookmark_interval)]
    if tls_dir is not None:
        command += ["--tls-dir", str(tls_dir.resolve())]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "scripts"),
                                                        os.environ.get("PYTHONPATH", "")])}
    log = open(state_dir / "standin.log", "ab")  # noqa: SIM115 - the child owns it
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log)
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None:
            raise RuntimeError(f"the Kubernetes stand-in exited with {process.returncode}; see "
                               f"{state_dir / 'standin.log'}")
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError(f"the Kubernetes stand-in did not start within {timeout}s")
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    tokens = {t["role"]: t["token"] for t in json.loads((state_dir / "tokens.json").read_text())}
    return KubeStandin(state_dir, info["url"], Path(info["ca"]), process, tokens)

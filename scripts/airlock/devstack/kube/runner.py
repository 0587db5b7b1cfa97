"""Run the stand-in in this process until SIGTERM/SIGINT: ``python -m airlock.devstack.kube --state-dir DIR``.

State directory layout: ``tokens.json`` (0600, created once: the static bearer tokens), ``sa-signing.key``
(0600, ServiceAccount token key), ``rules.json`` (optional authorization rules), ``audit.log``, ``pods/``
(container directories and logs), ``server.json`` (written once listening: url, ca, pid).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
from collections import deque
from pathlib import Path

from aiohttp import web

from ..tls import ensure_dev_certificate
from .auth import Authenticator, ServiceAccountTokens, default_tokens, load_rules, load_tokens, save_tokens
from .cluster import Cluster
from .containers import ContainerRoots, kill_all
from .seed import seed
from .server import AuditLog, KubeApiServer, tls_context
from .store import Store


def _tokens(state_dir: Path) -> Authenticator:
    path = state_dir / "tokens.json"
    if not path.exists():
        save_tokens(path, default_tokens())
    return Authenticator(load_tokens(path), ServiceAccountTokens(state_dir / "sa-signing.key"),
                         load_rules(state_dir / "rules.json"))


def _cluster(state_dir: Path, authenticator: Authenticator, ca: Path) -> Cluster:
    cluster = Cluster(Store(), ContainerRoots(state_dir / "pods"), authenticator.service_accounts,
                      ca_pem=ca.read_text())
    authenticator.account_uid = cluster.account_uid
    seed(cluster)
    return cluster


def _announce(state_dir: Path, url: str, ca: Path) -> None:
    staging = state_dir / "server.json.tmp"
    staging.write_text(json.dumps({"url": url, "ca": str(ca), "pid": os.getpid()}))
    staging.replace(state_dir / "server.json")


async def serve(state_dir: Path, host: str, port: int, tls_dir: Path | None, bookmark_interval: float) -> None:
    cert, key, ca = ensure_dev_certificate(tls_dir or state_dir / "tls")
    authenticator = _tokens(state_dir)
    cluster = _cluster(state_dir, authenticator, ca)
    api = KubeApiServer(cluster, authenticator, AuditLog(state_dir / "audit.log", deque(maxlen=2000)),
                        bookmark_interval)
    runner = web.AppRunner(api.app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls_context(cert, key), reuse_address=True)
    await site.start()
    _announce(state_dir, f"https://{host if ':' not in host else f'[{host}]'}:{port}", ca)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        kill_all()
        with contextlib.suppress(Exception):
            await runner.cleanup()
        _withdraw(state_dir)


def _withdraw(state_dir: Path) -> None:
    (state_dir / "server.json").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m airlock.devstack.kube",
                                     description="Airlock's local Kubernetes API stand-in (not a Kubernetes)")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-dir", type=Path, help="dev CA and certificate directory (default <state>/tls)")
    parser.add_argument("--bookmark-interval", type=float, default=60.0, help="seconds between watch bookmarks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args.state_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(args.state_dir.resolve(), args.host, args.port, args.tls_dir, args.bookmark_interval))

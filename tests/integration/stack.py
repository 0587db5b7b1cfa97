"""A handle on a running local stack (``airlock dev up`` in a subprocess) for tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airlock.cli import mint_dev_token
from airlock.devstack.stack import ROOT, free_port, wait_for_port

# Short grants so that renewal (and so revocation of live sessions) happens within seconds in tests; not
# shorter: the grant is a hard deadline, and a renewal under load (2 shared CPUs) needs a few seconds of margin.
TEST_GRANT_TTL = 10


@dataclass
class AirlockStack:
    state_dir: Path
    process: subprocess.Popen[bytes]
    info: dict[str, Any]

    @property
    def proxy_port(self) -> int:
        return int(self.info["proxy"]["port"])

    @property
    def proxy_pid(self) -> int:
        return int(self.info["proxy"]["pid"])

    @property
    def target_dsn(self) -> str:
        return str(self.info["target"]["dsn"])

    def token(self, identity: str, ttl: int = 900) -> str:
        return mint_dev_token(self.state_dir, identity, ttl_seconds=ttl)

    def conninfo(
        self,
        identity: str = "ci-nightly",
        *,
        port: int | None = None,
        sslmode: str = "require",
        dbname: str = "demo",
        token: str | None = None,
    ) -> str:
        password = token if token is not None else self.token(identity)
        return (
            f"host=127.0.0.1 port={port or self.proxy_port} dbname={dbname} user={identity} "
            f"sslmode={sslmode} password={password}"
        )

    def cli(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "airlock.cli", "--state-dir", str(self.state_dir), *args],
            capture_output=True,
            text=True,
            check=check,
            cwd=ROOT,
            timeout=60,
            env={**self.env(), **(env or {})},
        )

    def env(self) -> dict[str, str]:
        """This stack's AWS endpoint and names, whatever endpoint this test process points at."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRLOCK_"))}
        return {**clean, **self.info["env"]}

    def aws_client(self, service: str) -> Any:
        """A boto3 client for this stack's local AWS endpoint, whatever this test process points at."""
        import boto3

        env = self.info["env"]
        return boto3.client(
            service,
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )

    def proxy_log(self) -> str:
        return Path(self.info["proxy"]["log"]).read_text(errors="replace")

    @contextmanager
    def extra_proxy(
        self, env: dict[str, str] | None = None, **settings: str
    ) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
        """A second proxy process joined to this stack (same control plane and target)."""
        port = free_port()
        env = {
            **self.env(),
            **self.info["proxy_env"],
            "AIRLOCK_PROXY_LISTEN_PORT": str(port),
            **{f"AIRLOCK_PROXY_{k.upper()}": v for k, v in settings.items()},
            **(env or {}),
        }
        log = open(self.state_dir / f"proxy-{port}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen([sys.executable, "-m", "proxy"], env=env, cwd=ROOT, stdout=log, stderr=log)
        try:
            wait_for_port("127.0.0.1", port, process, timeout=20)
            yield port, process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
            log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_stack(state_dir: Path, timeout: float = 180) -> AirlockStack:
    log_path = state_dir / "dev-up.log"
    log = open(log_path, "wb")  # noqa: SIM115
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRLOCK_"))}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airlock.cli",
            "--state-dir",
            str(state_dir),
            "dev",
            "up",
            "--proxy-port",
            str(free_port()),
            "--grant-ttl",
            str(TEST_GRANT_TTL),
            "--kube-port",
            str(free_port()),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=clean,
    )
    stack_file = state_dir / "stack.json"
    deadline = time.monotonic() + timeout
    while not stack_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"local stack did not start:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.2)
    info = json.loads(stack_file.read_text())
    with socket.create_connection(("127.0.0.1", int(info["proxy"]["port"])), timeout=5):
        pass
    return AirlockStack(state_dir, process, info)


def eventually(check: Callable[[], bool], timeout: float = 30) -> bool:
    """Poll ``check`` until it holds: a pushed policy version reaches new sessions within the authorize
    Lambda's policy cache time, and live ones at their next grant renewal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False

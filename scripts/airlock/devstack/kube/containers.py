"""The stand-in's "containers": a scratch directory per pod container, its log file, and real processes.

There is no container runtime. A pod's container ``c`` is the directory
``<state>/pods/<namespace>/<pod>/<c>/root``; exec runs the requested command there as a real process of the
host (with a pseudo-terminal when ``tty=true``), with ``HOME`` pointing at it, the container's literal and
Secret/ConfigMap-referenced ``env`` set, and ``KUBE_STANDIN_LOG`` naming the container's log file. The
log is ``<state>/pods/<namespace>/<pod>/<c>/log``: one line per entry, ``<RFC 3339 time> <text>``; anything
appended to it (by a test, a seed or an exec'd process) is what ``pods/log`` serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import os
import pty
import shutil
import signal
import struct
import termios
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Obj = dict[str, Any]
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def log_stamp(when: dt.datetime | None = None) -> str:
    return (when or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class ContainerRoots:
    """Where each pod container lives on disk."""

    root: Path

    def directory(self, namespace: str, pod: str, container: str) -> Path:
        return self.root / namespace / pod / container

    def workdir(self, namespace: str, pod: str, container: str) -> Path:
        return self.directory(namespace, pod, container) / "root"

    def log_path(self, namespace: str, pod: str, container: str) -> Path:
        return self.directory(namespace, pod, container) / "log"

    def create(self, namespace: str, pod: str, containers: list[str]) -> None:
        for name in containers:
            self.workdir(namespace, pod, name).mkdir(parents=True, exist_ok=True)
            self.log_path(namespace, pod, name).touch()

    def remove(self, namespace: str, pod: str) -> None:
        shutil.rmtree(self.root / namespace / pod, ignore_errors=True)

    def append_log(self, namespace: str, pod: str, container: str, *lines: str) -> None:
        with self.log_path(namespace, pod, container).open("a") as log:
            for line in lines:
                log.write(f"{log_stamp()} {line}\n")


def container_env(container: Obj, lookup: Callable[[str, str, str], str | None]) -> dict[str, str]:
    """The container's ``env``: literal values, and ``valueFrom`` Secret/ConfigMap keys via ``lookup(kind,
    name, key)``."""
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        if not isinstance(var, dict) or not var.get("name"):
            continue
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        source = var.get("valueFrom") or {}
        for kind, ref_key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            ref = source.get(ref_key)
            if isinstance(ref, dict):
                value = lookup(kind, str(ref.get("name", "")), str(ref.get("key", "")))
                if value is not None:
                    env[var["name"]] = value
    return env


_LIVE: set[ContainerProcess] = set()


def kill_all() -> None:
    """Kill every exec'd process still running (the stand-in is stopping)."""
    for process in list(_LIVE):
        process.close()


class ExecError(Exception):
    """The command could not be started (not found, not executable)."""


@dataclass(eq=False)
class ContainerProcess:
    """One exec'd process. Output arrives through ``output`` as (stream, bytes): 1 stdout, 2 stderr (with a
    tty, everything is 1); ``None`` marks the end of all output."""

    process: asyncio.subprocess.Process
    tty_fd: int | None
    # Bounded: a slow client stops the readers, the pipe fills, the process waits; nothing piles up here.
    output: asyncio.Queue[tuple[int, bytes] | None] = field(default_factory=lambda: asyncio.Queue(maxsize=16))
    _readers: list[asyncio.Task[None]] = field(default_factory=list)
    _finisher: asyncio.Future[None] | None = None
    _stdin_closed: bool = False

    @classmethod
    async def start(cls, command: list[str], workdir: Path, env: dict[str, str], *, tty: bool, stdin: bool,
                    size: tuple[int, int] | None = None) -> ContainerProcess:
        environment = {"PATH": PATH, "HOME": str(workdir), "HOSTNAME": env.pop("HOSTNAME", "pod"), **env}
        if tty:
            environment.setdefault("TERM", "xterm")
        executable = command[0] if "/" in command[0] else shutil.which(command[0], path=PATH)
        if executable is None:
            raise ExecError(f'exec: "{command[0]}": executable file not found in $PATH')
        master: int | None = None
        try:
            if tty:
                master, slave = pty.openpty()
                if size is not None:
                    _set_size(master, *size)
                try:
                    process = await asyncio.create_subprocess_exec(
                        executable, *command[1:], cwd=workdir, env=environment, stdin=slave, stdout=slave,
                        stderr=slave, start_new_session=True, preexec_fn=_take_terminal,
                    )
                finally:
                    os.close(slave)
            else:
                process = await asyncio.create_subprocess_exec(
                    executable, *command[1:], cwd=workdir, env=environment,
                    stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
                )
        except OSError as e:
            if master is not None:
                os.close(master)
            raise ExecError(f'exec: "{command[0]}": {e.strerror or e}') from e
        started = cls(process, master)
        _LIVE.add(started)
        started._begin()
        return started

    def _begin(self) -> None:
        if self.tty_fd is not None:
            self._readers.append(asyncio.ensure_future(self._read_terminal(self.tty_fd)))
        else:
            assert self.process.stdout is not None and self.process.stderr is not None
            self._readers.append(asyncio.ensure_future(self._read_pipe(1, self.process.stdout)))
            self._readers.append(asyncio.ensure_future(self._read_pipe(2, self.process.stderr)))
        self._finisher = asyncio.ensure_future(self._finish_output())

    async def _read_pipe(self, stream: int, reader: asyncio.StreamReader) -> None:
        while chunk := await reader.read(32768):
            await self.output.put((stream, chunk))

    async def _read_terminal(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        readable = asyncio.Event()
        loop.add_reader(fd, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                try:
                    chunk = os.read(fd, 32768)
                except BlockingIOError:
                    continue
                except OSError:  # EIO: every holder of the terminal's other side has gone
                    return
                if not chunk:
                    return
                await self.output.put((1, chunk))
        finally:
            loop.remove_reader(fd)

    async def _finish_output(self) -> None:
        await asyncio.gather(*self._readers, return_exceptions=True)
        await self.output.put(None)

    async def write_stdin(self, data: bytes) -> None:
        if self._stdin_closed or not data:
            return
        if self.tty_fd is not None:
            view = memoryview(data)
            while view:
                try:
                    written = os.write(self.tty_fd, view)
                except BlockingIOError:
                    await asyncio.sleep(0.01)
                    continue
                except OSError:
                    return
                view = view[written:]
            return
        stdin = self.process.stdin
        if stdin is None:
            return
        try:
            stdin.write(data)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            self._stdin_closed = True

    def close_stdin(self) -> None:
        if self._stdin_closed:
            return
        self._stdin_closed = True
        if self.tty_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self.tty_fd, b"\x04")  # end of input at the terminal's line discipline
            return
        if self.process.stdin is not None:
            self.process.stdin.close()

    def resize(self, width: int, height: int) -> None:
        if self.tty_fd is not None and width > 0 and height > 0:
            with contextlib.suppress(OSError):
                _set_size(self.tty_fd, width, height)

    async def wait(self) -> int:
        """The exit code (128+N for a signal, as a shell reports it)."""
        code = await self.process.wait()
        return 128 - code if code < 0 else code

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def close(self) -> None:
        _LIVE.discard(self)
        self.kill()
        if self.tty_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.tty_fd)
            self.tty_fd = None


def _set_size(fd: int, width: int, height: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def _take_terminal() -> None:
    """In the child, after setsid: make the terminal on fd 0 the controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)

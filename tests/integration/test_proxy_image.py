"""The proxy image's contents, proven without a Docker engine.

``airlock.deploy.image_tree`` builds the file tree proxy/Dockerfile builds (the same staged sources, the
airlock wheel with both C extensions compiled by setup.py, installed apart from the repository). The
proxy is then started from that tree the way ECS runs the task: in a private mount namespace whose root
filesystem is read-only, with only TMPDIR writable (a fresh tmpfs, as the task's volume), every
capability dropped, its TLS certificate and key given as PEM text in the environment (as ECS injects
them from Secrets Manager), and the local stack as its control plane. A real psycopg session goes
through it over TLS.
"""

from __future__ import annotations

import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from airlock.deploy.image_tree import ImageTree, build_stage_sources, build_tree, proxy_command
from airlock.devstack.stack import free_port, wait_for_port
from tests.integration.stack import AirlockStack

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> ImageTree:
    return build_tree(tmp_path_factory.mktemp("image"))


def _read_only_root(tmpdir: Path | None, command: list[str]) -> list[str]:
    """``command`` with / remounted read-only in its own mount namespace, a tmpfs on ``tmpdir``, no
    capabilities (it cannot write anything else, root or not)."""
    mount_tmp = f"mount -t tmpfs -o size=4m,mode=0700 tmpfs {tmpdir} && " if tmpdir is not None else ""
    script = (
        "mount --make-rprivate / && mount -o remount,bind,ro / && " + mount_tmp +
        'exec setpriv --no-new-privs --inh-caps=-all --bounding-set=-all -- "$@"'
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-ec", script, "sh", *command]


_NOT_IN_THE_TASK = ("AIRLOCK_PROXY_TLS_CERT", "AIRLOCK_PROXY_TLS_KEY", "PYTHONPATH")


@contextmanager
def image_proxy(stack: AirlockStack, tree: ImageTree, tmpdir: Path, *, writable_tmp: bool = True,
                ) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    port, health = free_port(), free_port()
    env = {
        **stack.env(),
        # Not the repository on PYTHONPATH, nor PEM files: ECS passes the PEM text itself.
        **{k: v for k, v in stack.info["proxy_env"].items() if k not in _NOT_IN_THE_TASK},
        "AIRLOCK_PROXY_LISTEN_PORT": str(port),
        "AIRLOCK_PROXY_HEALTH_PORT": str(health),
        "AIRLOCK_PROXY_TLS_CERT_PEM": Path(stack.info["proxy_env"]["AIRLOCK_PROXY_TLS_CERT"]).read_text(),
        "AIRLOCK_PROXY_TLS_KEY_PEM": Path(stack.info["proxy_env"]["AIRLOCK_PROXY_TLS_KEY"]).read_text(),
        "TMPDIR": str(tmpdir),
        "HOME": "/nonexistent",
    }
    process = subprocess.Popen(_read_only_root(tmpdir if writable_tmp else None, proxy_command(tree)), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/")
    try:
        yield process, port, health
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_the_tree_is_what_the_dockerfile_builds(tree: ImageTree) -> None:
    assert build_stage_sources() == ["pyproject.toml", "setup.py", "README.md", "proxy/requirements.txt", "shared",
                                     "proxy"]
    packages = sorted(p.name for p in tree.site.iterdir() if not p.name.endswith(".dist-info") and p.name != "bin")
    assert packages == ["proxy", "shared"]  # no CLI, no local stack, no tests
    assert [p.name.split(".")[0] for p in tree.compiled] == ["_framing", "_tape"]


def test_proxy_serves_from_the_image_tree_with_a_read_only_root(
    stack: AirlockStack, tree: ImageTree, tmp_path: Path
) -> None:
    tmpdir = tmp_path / "run-airlock"
    tmpdir.mkdir()
    with image_proxy(stack, tree, tmpdir) as (process, port, health):
        wait_for_port("127.0.0.1", port, process, timeout=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz", timeout=5) as response:
            assert response.status == 200
        with psycopg.connect(stack.conninfo(port=port)) as conn:
            assert conn.execute("SELECT count(*) FROM customers").fetchone() == (10000,)
            assert conn.info.pgconn.ssl_in_use

        proc = Path(f"/proc/{process.pid}")
        mounts = [line.split() for line in (proc / "mountinfo").read_text().splitlines()]
        root = next(m for m in mounts if m[4] == "/")
        assert "ro" in root[5].split(","), root
        scratch = next(m for m in mounts if m[4] == str(tmpdir))
        assert "rw" in scratch[5].split(",") and "tmpfs" in scratch
        # The TLS PEMs were written under TMPDIR and removed at once: nothing is left in it.
        assert list((proc / "root" / str(tmpdir).lstrip("/")).iterdir()) == []
        maps = (proc / "maps").read_text()
        assert f"{tree.site}/shared/pg/wire/_framing" in maps and f"{tree.site}/shared/recording/_tape" in maps
        capabilities = dict(line.split(":\t") for line in (proc / "status").read_text().splitlines() if ":\t" in line)
        assert int(capabilities["CapEff"], 16) == 0
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode(errors="replace")
    assert process.returncode == 0, output
    assert "was not built" not in output  # the compiled framer and tape, not their Python twins


def test_proxy_without_a_writable_tmpdir_says_what_to_change(
    stack: AirlockStack, tree: ImageTree, tmp_path: Path
) -> None:
    tmpdir = tmp_path / "run-airlock"
    tmpdir.mkdir()
    with image_proxy(stack, tree, tmpdir, writable_tmp=False) as (process, _, _):
        output = process.communicate(timeout=60)[0].decode(errors="replace")
    assert process.returncode == 2, output
    assert "point TMPDIR" in output and str(tmpdir) in output

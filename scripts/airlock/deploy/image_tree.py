"""The proxy image's file tree, built the way proxy/Dockerfile builds it, without a Docker engine.

``build_tree(dest)`` follows the Dockerfile's build stage: the files its ``COPY`` lines take from the
context (filtered as proxy/Dockerfile.dockerignore filters them) are staged, and ``pip wheel`` builds the
airlock wheel from them, compiling both C extensions with setup.py. The runtime stage's install of that
wheel becomes ``pip install --no-deps --target <dest>/site``. What the image installs beside it from
proxy/requirements.txt is taken from the running environment instead of being downloaded again (the
versions pyproject.toml resolves to; tests/unit/test_lambda_packaging.py holds the list equal to what
the proxy imports). ``proxy_command`` runs ``python -m proxy`` from that tree with nothing of the
repository on ``sys.path``.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "proxy" / "Dockerfile"
_SKIPPED = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc")  # as Dockerfile.dockerignore says


@dataclass(frozen=True, slots=True)
class ImageTree:
    root: Path
    site: Path  # where the airlock wheel is installed (the image's site-packages)
    wheel: Path

    @property
    def compiled(self) -> list[Path]:
        return sorted(self.site.rglob("*.so"))


def build_stage_sources(dockerfile: Path = DOCKERFILE) -> list[str]:
    """The context paths the build stage copies (``COPY src... dest`` without ``--from``)."""
    sources: list[str] = []
    for line in dockerfile.read_text().replace("\\\n", " ").splitlines():
        words = shlex.split(line.split("#", 1)[0]) if line.strip() else []
        if words[:1] == ["FROM"] and sources:
            break  # the runtime stage copies from the build stage only
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def build_tree(dest: Path, python: str = sys.executable) -> ImageTree:
    context = dest / "context"
    for source in build_stage_sources():
        src, target = ROOT / source, context / source
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=_SKIPPED, dirs_exist_ok=True)
        else:
            shutil.copy2(src, target)
    wheels = dest / "wheels"
    _run([python, "-m", "pip", "wheel", "--quiet", "--no-cache-dir", "--no-deps", "--wheel-dir", str(wheels),
          str(context)])
    (wheel,) = wheels.glob("airlock-*.whl")
    site = dest / "root" / "site-packages"
    _run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(site), str(wheel)])
    return ImageTree(dest / "root", site, wheel)


def proxy_command(tree: ImageTree, python: str = sys.executable) -> list[str]:
    """``python -m proxy`` from the tree: isolated mode, the tree first, then the third-party libraries."""
    third_party = sysconfig.get_paths()["purelib"]
    bootstrap = (f"import runpy, sys; sys.path[:0] = [{str(tree.site)!r}, {third_party!r}]; "
                 "runpy.run_module('proxy', run_name='__main__', alter_sys=True)")
    return [python, "-I", "-S", "-c", bootstrap]


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")

"""``python -m airlock.deploy.lambda_check``: build the Lambdas with ``sam build`` and prove the packages work.

What a deploy would upload is built twice, without a container: for the template's architecture (the
packages ``sam deploy`` ships) and for this machine's CPU (so the handlers can be imported here). Then,
for every ``AWS::Serverless::Function`` and ``AWS::Serverless::LayerVersion`` of ``template.yaml``:

* contents: a function package holds its own CodeUri files and installed distributions, nothing else
  (no ``tests/``, ``scripts/``, ``.airlock/``, keys); the layer holds ``python/shared/`` and nothing else;
* compiled code matches the architecture (ELF machine of every ``.so``);
* both builds carry the same distributions at the same versions;
* sizes: function plus layers, unzipped, well under Lambda's 250 MB;
* every handler imports, the way the runtime imports it, in a clean interpreter of the runtime's Python
  version (``-I -S``: no site-packages, no repository on ``sys.path``), with only the function's package
  and its layers on the path and Lambda's environment variables set, so a missing dependency fails here.

Exit status 1 with a list of what is wrong; a table of package sizes either way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airlock.devstack.template import load_template

ROOT = Path(__file__).resolve().parents[3]
MB = 1_000_000
# Lambda's limit is 250 MB unzipped for a function and its layers together; stay well under it.
SIZE_BUDGET = 150 * MB
_ELF_MACHINE = {"arm64": 0xB7, "x86_64": 0x3E}
_HOST_ARCH = {"aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64", "amd64": "x86_64"}
# Never in a package, whoever put them in a CodeUri (the local stack keeps its CA key under .airlock/).
_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\s+[A-Za-z0-9+/=\s]{64}")


@dataclass(frozen=True, slots=True)
class Function:
    logical_id: str
    handler: str
    runtime: str
    architecture: str
    layers: tuple[str, ...]  # logical ids of the template's own layers
    environment: tuple[str, ...]  # variable names


def functions_of(template: Mapping[str, Any]) -> list[Function]:
    """The template's functions, Globals applied (the parts this check needs)."""
    defaults = template.get("Globals", {}).get("Function", {})
    out = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = {**defaults, **resource.get("Properties", {})}
        layers = tuple(ref["Ref"] for ref in props.get("Layers", []) if isinstance(ref, dict) and "Ref" in ref)
        arch = props.get("Architectures", ["x86_64"])[0]
        if isinstance(arch, dict):  # !Ref LambdaArchitecture
            arch = template["Parameters"][arch["Ref"]]["Default"]
        variables = {**defaults.get("Environment", {}).get("Variables", {}),
                     **resource.get("Properties", {}).get("Environment", {}).get("Variables", {})}
        out.append(Function(logical_id, props["Handler"], props["Runtime"], arch, layers, tuple(sorted(variables))))
    return out


def sam_build(sam: str, build_dir: Path, architecture: str | None) -> None:
    command = [sam, "build", "--template-file", str(ROOT / "template.yaml"), "--build-dir", str(build_dir)]
    if architecture is not None:
        command += ["--parameter-overrides", f"LambdaArchitecture={architecture}"]
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PIP_CACHE_DIR": str(ROOT / ".aws-sam" / "pip-cache")}
    print("$", " ".join(command), flush=True)
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"sam build failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def distributions(package: Path) -> dict[str, str]:
    """Installed distributions in a package directory: name -> version (from *.dist-info)."""
    found = {}
    for info in package.glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").partition("-")
        found[name.lower().replace("_", "-")] = version
    return found


def _installed_files(package: Path) -> set[str]:
    """Top-level entries that some distribution's RECORD names (so pip put them there)."""
    names = set()
    for record in package.glob("*.dist-info/RECORD"):
        for line in record.read_text().splitlines():
            path = line.split(",", 1)[0]
            if path and not path.startswith(".."):
                names.add(path.split("/", 1)[0])
    return names


def elf_machine(path: Path) -> int | None:
    head = path.read_bytes()[:20]
    if head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def check_function_package(function: Function, package: Path, code_uri: Path) -> list[str]:
    problems = []
    # What git tracks in the CodeUri: a stray untracked file there (an .env, a key) is not "own code".
    tracked = subprocess.run(["git", "ls-files", "."], cwd=code_uri, capture_output=True, text=True, check=True)
    own = {line.split("/", 1)[0] for line in tracked.stdout.splitlines()}
    installed = _installed_files(package)
    for entry in sorted(p.name for p in package.iterdir()):
        if entry not in own and entry not in installed and not entry.endswith(".dist-info"):
            problems.append(f"{function.logical_id}: {entry!r} is neither its own code nor an installed distribution")
    problems += _forbidden(function.logical_id, package)
    return problems


def check_layer(logical_id: str, layer: Path, source: Path) -> list[str]:
    problems = []
    top = sorted(p.name for p in layer.iterdir())
    if top != ["python"] or sorted(p.name for p in (layer / "python").iterdir()) != ["shared"]:
        problems.append(f"{logical_id}: a layer holds python/shared/ alone, found {top}")
        return problems
    packaged = {p.relative_to(layer / "python" / "shared") for p in (layer / "python" / "shared").rglob("*.py")}
    expected = {p.relative_to(source) for p in source.rglob("*.py") if "__pycache__" not in p.parts}
    if packaged != expected:
        missing, extra = sorted(map(str, expected - packaged)), sorted(map(str, packaged - expected))
        problems.append(f"{logical_id}: python/shared differs from shared/: missing {missing}, extra {extra}")
    problems += _forbidden(logical_id, layer)
    return problems


def _forbidden(owner: str, tree: Path) -> list[str]:
    """The local stack's state, and anything holding a private key (a CA bundle is fine)."""
    return [f"{owner}: {p.relative_to(tree)} must never be packaged" for p in tree.rglob("*")
            if p.name == ".airlock" or (p.is_file() and _PRIVATE_KEY.search(p.read_bytes()[:65536]))]


def check_architecture(owner: str, tree: Path, architecture: str) -> list[str]:
    wanted = _ELF_MACHINE[architecture]
    return [f"{owner}: {p.relative_to(tree)} is not built for {architecture}"
            for p in tree.rglob("*.so") if elf_machine(p) not in (None, wanted)]


_IMPORT = """
import importlib, json, sys
sys.path[:0] = json.loads(sys.argv[1])
module_path, _, attribute = sys.argv[2].rpartition(".")
module = importlib.import_module(module_path.replace("/", "."))
handler = getattr(module, attribute)
assert callable(handler), f"{sys.argv[2]} is not callable"
repo, built = sys.argv[3], sys.argv[4]
files = [getattr(m, "__file__", None) or "" for m in list(sys.modules.values())]
leaks = [f for f in files if f.startswith(repo) and not f.startswith(built)]
assert not leaks, f"imported from the repository: {leaks[:3]}"
print(f"{sys.version_info[0]}.{sys.version_info[1]}")
"""


def import_handler(python: str, function: Function, paths: list[Path]) -> str | None:
    """Import the handler as the runtime would; None if it worked, else why not."""
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "AWS_LAMBDA_FUNCTION_NAME": function.logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "_HANDLER": function.handler,
        # The template's variables, with placeholder values: importing must not need real ones.
        **{name: "import-check" for name in function.environment if not name.startswith("POWERTOOLS_LOG")},
    }
    with tempfile.TemporaryDirectory() as cwd:
        result = subprocess.run(
            [python, "-I", "-S", "-c", _IMPORT, json.dumps([str(p) for p in paths]), function.handler,
             str(ROOT) + os.sep, str(paths[0].parent) + os.sep],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
        )
    if result.returncode != 0:
        return result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
    wanted = function.runtime.removeprefix("python")
    if result.stdout.strip() != wanted:
        return f"imported with Python {result.stdout.strip()}, the runtime is {function.runtime}"
    return None


def report(rows: Iterable[tuple[str, str, int]]) -> None:
    print(f"{'package':<28} {'architecture':<13} {'unzipped':>12}")
    for name, arch, size in rows:
        print(f"{name:<28} {arch:<13} {size:>12,} B")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--sam", default="sam")
    parser.add_argument("--python", required=True, help="an interpreter of the runtime's Python version")
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    parser.add_argument("--no-build", action="store_true", help="check the builds already there")
    args = parser.parse_args(argv)

    template = load_template(ROOT / "template.yaml")
    functions = functions_of(template)
    layers = {lid: r for lid, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::LayerVersion"}
    deploy_arch = {f.architecture for f in functions}
    if len(deploy_arch) != 1:
        print(f"functions disagree on their architecture: {deploy_arch}")
        return 1
    (arch,) = deploy_arch
    host = _HOST_ARCH[platform.machine().lower()]
    host_dir = args.build_dir if host == arch else args.build_dir.with_name(f"{args.build_dir.name}-{host}")
    if not args.no_build:
        sam_build(args.sam, args.build_dir, None)
        if host_dir != args.build_dir:
            sam_build(args.sam, host_dir, host)

    problems: list[str] = []
    rows = []
    for lid in layers:
        layer = args.build_dir / lid
        problems += check_layer(lid, layer, ROOT / "shared")
        problems += check_architecture(lid, layer, arch)
        rows.append((lid, arch, tree_size(layer)))
    for function in functions:
        props = template["Resources"][function.logical_id]["Properties"]
        package = args.build_dir / function.logical_id
        problems += check_function_package(function, package, ROOT / props["CodeUri"])
        problems += check_architecture(function.logical_id, package, arch)
        size = tree_size(package) + sum(tree_size(args.build_dir / lid) for lid in function.layers)
        rows.append((function.logical_id, arch, tree_size(package)))
        if size > SIZE_BUDGET:
            problems.append(f"{function.logical_id}: {size:,} bytes with its layers, budget {SIZE_BUDGET:,}")
        if host_dir != args.build_dir and distributions(package) != distributions(host_dir / function.logical_id):
            problems.append(f"{function.logical_id}: the {arch} and {host} builds carry different distributions")
        paths = [host_dir / function.logical_id, *(host_dir / lid / "python" for lid in function.layers)]
        failure = import_handler(args.python, function, paths)
        print(f"import {function.logical_id} ({function.handler}, {host} build): {failure or 'ok'}", flush=True)
        if failure:
            problems.append(f"{function.logical_id}: handler {function.handler} does not import: {failure}")
    report(rows)
    for problem in problems:
        print("FAIL", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

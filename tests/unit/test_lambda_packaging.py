"""Each Lambda ships only what it imports: its CodeUri, the shared/ layer and its requirements.txt; the
proxy image likewise installs proxy/requirements.txt beside the airlock wheel.

The packages themselves are built and imported by ``make lambda-check`` (``sam build``, a clean Python of
the runtime's version); these tests keep the inputs of that build honest and run in a second: the
requirements file of every function (and of the proxy) names exactly the third-party distributions its
entry point imports, with the same version ranges as pyproject.toml, and no CodeUri can reach the rest of
the repository.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from airlock.devstack.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = sorted(k for k, v in RESOURCES.items() if v["Type"] == "AWS::Serverless::Function")
PROXY = "proxy image"
PACKAGES = [*FUNCTIONS, PROXY]
# Imported when present, never required, so not shipped: the masking prefilter falls back to Python
# without hyperscan (no arm64 Linux wheel); pynamodb uses blinker for signals and botocore certifi for
# its CA bundle only if they are installed (here they are, for other tools).
OPTIONAL = {"hyperscan", "blinker", "certifi"}
# Ours, not third-party (the editable install maps shared/, functions/ and scripts/airlock to it).
OURS = {"airlock"}


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", Requirement(requirement).name).lower()


@cache
def _pyproject() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_name(r): Requirement(r) for r in project["dependencies"]}


def _entry_module(package: str) -> str:
    if package == PROXY:
        return "proxy.__main__"
    props = RESOURCES[package]["Properties"]
    return ".".join([*Path(props["CodeUri"]).parts, props["Handler"].rpartition(".")[0].replace("/", ".")])


def _requirements(package: str) -> dict[str, Requirement]:
    code = ROOT / "proxy" if package == PROXY else ROOT / RESOURCES[package]["Properties"]["CodeUri"]
    path = code / "requirements.txt"
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return {_name(line): Requirement(line) for line in lines if line}


def _closure(names: set[str]) -> set[str]:
    """The distributions ``names`` pull in when installed (as installed in this environment)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for spec in metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(_name(spec))
    return seen


def _closure_with_extras(requirements: dict[str, Requirement]) -> set[str]:
    roots: set[str] = set()
    for name, requirement in requirements.items():
        roots.add(name)
        for spec in metadata.requires(name) or []:
            dependency = Requirement(spec)
            if dependency.marker is not None and any(
                dependency.marker.evaluate({"extra": extra}) for extra in requirement.extras
            ):
                roots.add(_name(spec))
    return _closure(roots)


_IMPORTED = """
import importlib, json, sys
before = set(sys.modules)
importlib.import_module(sys.argv[1])
print(json.dumps({m: getattr(sys.modules[m], "__file__", None) for m in set(sys.modules) - before}))
"""


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imported_distributions(package: str) -> set[str]:
    """Distributions an entry point imports: at import time, plus the imports deferred into functions of
    the modules it loads (``import boto3`` inside a client factory counts too)."""
    command = [sys.executable, "-c", _IMPORTED, _entry_module(package)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT, timeout=120)
    loaded: dict[str, str | None] = json.loads(out.stdout)
    top = {name.split(".")[0] for name in loaded}
    ours = [Path(p) for p in loaded.values() if p and p.endswith(".py")
            and any(Path(p).is_relative_to(ROOT / d) for d in ("shared", "functions", "proxy"))]
    for path in ours:
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for block in ast.walk(tree) if _is_type_checking(block) for n in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                top.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                top.add(node.module.split(".")[0])
    owners = metadata.packages_distributions()
    return {re.sub(r"[-_.]+", "-", d).lower() for m in top for d in owners.get(m, [])} - OURS


def test_every_function_has_its_own_code_uri_and_requirements() -> None:
    assert FUNCTIONS, "template.yaml declares no function"
    for logical_id in FUNCTIONS:
        props = RESOURCES[logical_id]["Properties"]
        code_uri = ROOT / props["CodeUri"]
        # Never the repository root: that packages tests/, scripts/, .airlock/ and whatever else lies there.
        assert code_uri.resolve().parent == (ROOT / "functions").resolve(), f"{logical_id}: CodeUri {code_uri}"
        assert (code_uri / "requirements.txt").is_file(), f"{logical_id}: no requirements.txt in its CodeUri"
        module = props["Handler"].rpartition(".")[0]
        assert (code_uri / f"{module}.py").is_file(), f"{logical_id}: handler {props['Handler']} not in {code_uri}"


def test_shared_layer_is_shared_whole_for_every_function() -> None:
    layers = {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::Serverless::LayerVersion"}
    assert list(layers) == ["SharedLayer"]
    content = ROOT / layers["SharedLayer"]["Properties"]["ContentUri"]
    # The layer's source is one link to shared/, so a module added or moved there is packaged with it.
    assert [p.name for p in content.iterdir()] == ["shared"]
    assert (content / "shared").is_symlink() and (content / "shared").resolve() == (ROOT / "shared").resolve()
    assert layers["SharedLayer"]["Metadata"]["BuildMethod"] == TEMPLATE["Globals"]["Function"]["Runtime"]
    assert TEMPLATE["Globals"]["Function"]["Layers"] == [{"Ref": "SharedLayer"}]


@pytest.mark.parametrize("package", PACKAGES)
def test_requirements_name_exactly_what_the_entry_point_imports(package: str) -> None:
    requirements = _requirements(package)
    imported = _imported_distributions(package)
    optional = OPTIONAL - ({"hyperscan"} if package == PROXY else set())  # the proxy wants it where it exists
    missing = imported - _closure_with_extras(requirements) - optional
    assert not missing, f"{package} imports {sorted(missing)}, which its requirements.txt does not bring"
    unused = {name for name in requirements if name not in imported}
    assert not unused, f"{package}'s requirements.txt names {sorted(unused)}, which it never imports"


@pytest.mark.parametrize("package", PACKAGES)
def test_requirements_use_the_version_ranges_of_pyproject(package: str) -> None:
    project = _pyproject()
    for name, requirement in _requirements(package).items():
        assert name in project, f"{package}: {name} is not a dependency in pyproject.toml"
        assert requirement.specifier == project[name].specifier, f"{package}: {name} {requirement.specifier}"
        assert requirement.extras <= project[name].extras, f"{package}: {name}{sorted(requirement.extras)}"
        assert str(requirement.marker) == str(project[name].marker), f"{package}: {name}; {requirement.marker}"

"""Parse policy YAML into a validated ``Policy``; every problem becomes one ``PolicyError``."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from shared.policy.model import SCHEMA_VERSION, Policy


class PolicyError(ValueError):
    """The policy text is not a valid policy; ``problems`` are "path: message" strings."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid policy: " + "; ".join(problems))


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r} (line {line})")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(policy)"


# The tags of the target union (``model.Target``): pydantic puts the chosen one in an error's location.
_ENGINES = frozenset({"postgres", "ssh", "kubernetes"})


def _location(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """``targets.demo.postgres.port`` -> ``targets.demo.port``."""
    if len(loc) > 2 and loc[0] == "targets" and loc[2] in _ENGINES:
        return loc[:2] + loc[3:]
    return loc


def _problems(err: ValidationError, data: dict[Any, Any]) -> list[str]:
    problems = []
    for e in err.errors(include_url=False, include_input=False):
        e["loc"] = _location(tuple(e["loc"]))
        msg = e["msg"].removeprefix("Value error, ")
        if e["loc"] == ("version",):
            got = repr(data["version"]) if "version" in data else "missing"
            msg = f"unsupported policy schema version {got} (this Airlock understands {SCHEMA_VERSION})"
        # Cross-reference problems already carry their own paths.
        problems.extend(msg.split("; ") if not e["loc"] else [f"{_path(e['loc'])}: {msg}"])
    return problems


def parse_policy(text: str) -> Policy:
    """Parse and validate policy YAML; raise ``PolicyError`` naming each bad field's path."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as e:
        raise PolicyError([f"not valid YAML: {e}"]) from e
    if not isinstance(data, dict):
        raise PolicyError(["(policy): the document must be a mapping with 'version', 'identities', ..."])
    try:
        return Policy.model_validate(data)
    except ValidationError as e:
        raise PolicyError(_problems(e, data)) from e

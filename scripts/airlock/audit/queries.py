"""Named queries: declared once, as ``AWS::Athena::NamedQuery`` resources in template.yaml.

In AWS they are read back from the workgroup (``athena.named_queries``); locally from the template itself
(the local AWS endpoint has no Athena). A query's description ends with its parameters, in the order of
its ``?`` placeholders: "... Parameters - identity, from_date, to_date." (Athena's execution parameters
are positional; ``--param name=value`` names them.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from airlock.devstack.template import load_template

_PARAMETERS = re.compile(r"Parameters - ([a-z_][a-z0-9_]*(?:, [a-z_][a-z0-9_]*)*)\.?\s*$")


class QueryError(Exception):
    """A query that cannot run as asked (unknown name, missing parameter, engine failure)."""


@dataclass(frozen=True, slots=True)
class NamedQuery:
    name: str
    description: str
    sql: str

    @property
    def parameters(self) -> tuple[str, ...]:
        match = _PARAMETERS.search(" ".join(self.description.split()))
        return tuple(match.group(1).split(", ")) if match else ()

    def bind(self, values: Mapping[str, str]) -> list[str]:
        """The values in placeholder order; every parameter given, nothing else."""
        unknown = sorted(set(values) - set(self.parameters))
        missing = [p for p in self.parameters if p not in values]
        if unknown or missing:
            wanted = ", ".join(f"--param {p}=..." for p in self.parameters) or "no parameters"
            problem = f"unknown {unknown}" if unknown else f"missing {missing}"
            raise QueryError(f"named query {self.name!r}: {problem}; it takes {wanted}")
        return [values[p] for p in self.parameters]


def from_template(path: Path) -> dict[str, NamedQuery]:
    template = load_template(path)
    queries = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Athena::NamedQuery":
            props = resource["Properties"]
            queries[props["Name"]] = NamedQuery(props["Name"], " ".join(props["Description"].split()),
                                                props["QueryString"])
    return queries


def parse_params(pairs: list[str]) -> dict[str, str]:
    """``["identity=ci-nightly", "from_date=2025-01-01"]`` -> a mapping (``--param k=v``)."""
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise QueryError(f"--param {pair!r}: expected NAME=VALUE")
        values[name] = value
    return values

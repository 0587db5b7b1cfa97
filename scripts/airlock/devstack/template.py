"""Read ``template.yaml`` the way CloudFormation does, for the local stack.

The loader turns CloudFormation short tags (``!Ref X``, ``!Sub ...``, ``!GetAtt A.B`` ...) into the long
form (``{"Ref": "X"}``, ``{"Fn::Sub": ...}``, ``{"Fn::GetAtt": ["A", "B"]}``), so the rest of the code
sees plain JSON-like data. The ``Resolver`` evaluates the intrinsic functions the local stack needs:
``Ref`` to parameters, pseudo parameters and provisioned resources, ``Fn::Sub``, ``Fn::GetAtt`` for
attributes the provisioner recorded, plus ``Fn::Join``/``Select``/``Split``/``If`` and conditions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Short tags whose long form is "Fn::<Name>"; Ref and Condition are the exceptions handled apart.
_FN_TAGS = (
    "And", "Base64", "Cidr", "Equals", "FindInMap", "GetAZs", "GetAtt", "If", "ImportValue", "Join",
    "Length", "Not", "Or", "Select", "Split", "Sub", "ToJsonString", "Transform",
)  # fmt: skip


class CloudFormationLoader(yaml.SafeLoader):
    """A YAML loader that understands CloudFormation's short-form intrinsic functions."""


def _construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    assert isinstance(node, yaml.MappingNode)
    return loader.construct_mapping(node, deep=True)


def _register_tags() -> None:
    def long_form(key: str) -> Any:
        def constructor(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
            value = _construct(loader, node)
            # "!GetAtt Res.Attr" is the dotted short form of ["Res", "Attr"].
            if key == "Fn::GetAtt" and isinstance(value, str):
                value = value.split(".", 1)
            return {key: value}

        return constructor

    CloudFormationLoader.add_constructor("!Ref", long_form("Ref"))
    CloudFormationLoader.add_constructor("!Condition", long_form("Condition"))
    for name in _FN_TAGS:
        CloudFormationLoader.add_constructor(f"!{name}", long_form(f"Fn::{name}"))


_register_tags()


def load_template(path: Path | str) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template into plain dicts and lists (intrinsics in long form)."""
    with open(path, encoding="utf-8") as f:
        document = yaml.load(f, Loader=CloudFormationLoader)  # a SafeLoader subclass
    if not isinstance(document, dict) or "Resources" not in document:
        raise ValueError(f"{path}: not a CloudFormation template")
    return document


class UnresolvedReference(LookupError):
    """A template expression refers to something the local stack does not know."""


# Stands for AWS::NoValue: the enclosing property or list item disappears.
_NO_VALUE = object()
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@dataclass
class Resolver:
    """Evaluates intrinsic functions against parameters and the resources provisioned so far.

    ``refs`` maps a logical id to what ``Ref`` returns for it; ``attributes`` maps (logical id,
    attribute) to what ``Fn::GetAtt`` returns. The provisioner fills both as it creates resources.
    """

    template: Mapping[str, Any]
    stack_name: str
    region: str = "us-east-1"
    account_id: str = "123456789012"
    parameters: Mapping[str, str] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)

    def resolve(self, node: Any) -> Any:
        """Return ``node`` with every intrinsic function evaluated."""
        value = self._resolve(node)
        return None if value is _NO_VALUE else value

    def resolve_str(self, node: Any) -> str:
        value = self.resolve(node)
        if isinstance(value, bool):
            return "true" if value else "false"
        if not isinstance(value, str | int | float):
            raise TypeError(f"expected a scalar, got {value!r}")
        return str(value)

    # -- evaluation

    def _resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = (self._resolve(item) for item in node)
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key.startswith("Fn::"):
                return self._function(key[4:], arg)
            if key == "Condition":
                return self.condition(arg)
        items = ((k, self._resolve(v)) for k, v in node.items())
        return {k: v for k, v in items if v is not _NO_VALUE}

    def _function(self, name: str, arg: Any) -> Any:
        if name == "Sub":
            return self._sub(arg)
        if name == "GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return self.get_att(logical_id, self.resolve_str(attribute))
        if name == "If":
            condition, when_true, when_false = arg
            return self._resolve(when_true if self.condition(condition) else when_false)
        args = self._resolve(arg)
        if name == "Join":
            separator, values = args
            return separator.join(str(v) for v in values)
        if name == "Select":
            index, values = args
            return values[int(index)]
        if name == "Split":
            separator, value = args
            return value.split(separator)
        if name == "Equals":
            left, right = args
            return str(left) == str(right)
        if name == "Not":
            return not args[0]
        if name == "And":
            return all(args)
        if name == "Or":
            return any(args)
        raise UnresolvedReference(f"Fn::{name} is not supported by the local stack")

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": (f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/local"),
        }
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        declared = self.template.get("Parameters", {}).get(name)
        if declared is not None:
            if "Default" not in declared:
                raise UnresolvedReference(f"parameter {name} has no value and no default")
            return str(declared["Default"])
        if name in self.refs:
            return self.refs[name]
        raise UnresolvedReference(f"Ref {name}: not provisioned locally")

    def get_att(self, logical_id: str, attribute: str) -> str:
        try:
            return self.attributes[(logical_id, attribute)]
        except KeyError:
            raise UnresolvedReference(f"Fn::GetAtt {logical_id}.{attribute}: not provisioned locally") from None

    def condition(self, name: str) -> bool:
        definition = self.template.get("Conditions", {}).get(name)
        if definition is None:
            raise UnresolvedReference(f"condition {name} is not defined")
        return bool(self._resolve(definition))

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        local = {k: self.resolve_str(v) for k, v in variables.items()}

        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):  # ${!Literal} escapes to ${Literal}
                return "${" + expression[1:] + "}"
            if expression in local:
                return local[expression]
            if "." in expression and not expression.startswith("AWS::"):
                logical_id, attribute = expression.split(".", 1)
                return self.get_att(logical_id, attribute)
            return self.resolve_str(self.ref(expression))

        return _SUB_VARIABLE.sub(replace, text)

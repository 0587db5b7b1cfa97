"""Which AWS operations a component's code can reach, found statically (the least-privilege test's input).

Theory of operation. Every module of ``shared/``, ``functions/``, ``proxy/`` and ``scripts/airlock/`` is
parsed once. A *unit* is a function or method (nested functions and lambdas belong to the unit they are
written in), a class body, or a module's top-level code. Starting from a component's entry point, units
are reached the way rapid type analysis reaches them: a name that resolves to a function reaches it; a
name that resolves to a class makes the class live (its body, its dunder methods, and its bases too);
any attribute name used in reached code reaches the methods of that name on every live class; a
module whose symbol is used has its top-level code reached. This over-approximates the calls that can
happen (every method of a matching name), never under-approximates them for code written in the ordinary
way, so "reachable" is a sound superset of "called".

In the reached units, an AWS operation is one of:

* ``<client>.<operation>(...)`` where the receiver's name says it is a client (``self.client``,
  ``self._client``, ``state["client"]``, ``s3_client()``: the project's convention) and the method is an
  operation of a service whose client the reached code creates (``.client("s3")``), or
  ``<client>.get_paginator("<operation>")``;
* a call of aws-lambda-powertools' parameters utility (``parameters.get_secret(name)``), which calls
  the service for its caller;
* a pynamodb call on a model bound to a table: ``_bind(<Model>, settings.<table field>, ...)`` (or a model
  class used directly) and what flows from it (``item = m(...)``, ``for item in m.query(...)``), calling
  ``get``/``save``/``update``/``query``/... ; ``m.<index>.query`` queries that index.

Each operation carries the settings field naming its table (DynamoDB) and keyword arguments that change
what IAM asks for (an Object Lock put also needs ``s3:PutObjectRetention``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# Package directory -> the module name prefix it is imported under.
PACKAGES = {ROOT / "shared": "shared", ROOT / "functions": "functions", ROOT / "proxy": "proxy",
            ROOT / "scripts" / "airlock": "airlock"}  # fmt: skip

# pynamodb Model / Index methods -> DynamoDB operation.
PYNAMODB_OPERATIONS = {
    "get": "GetItem", "refresh": "GetItem", "save": "PutItem", "update": "UpdateItem", "delete": "DeleteItem",
    "query": "Query", "scan": "Scan", "count": "Query", "batch_get": "BatchGetItem", "batch_write": "BatchWriteItem",
    "exists": "DescribeTable", "describe_table": "DescribeTable", "create_table": "CreateTable",
    "delete_table": "DeleteTable",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class AwsCall:
    service: str  # boto3 service name: "s3", "dynamodb", ...
    operation: str  # API operation name: "PutObject", "Query", ...
    where: str  # "shared/recording/store.py:85"
    keywords: frozenset[str] = frozenset()  # keyword arguments given (names only)
    table_field: str | None = None  # DynamoDB: the settings field naming the table
    index: str | None = None  # DynamoDB: the secondary index queried (its ``index_name``)


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    scope: dict[str, str] = field(default_factory=dict)  # local name -> symbol ("mod:Name" or "mod")
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = field(default_factory=dict)


@dataclass(frozen=True)
class Codebase:
    modules: dict[str, Module]

    @staticmethod
    def load() -> Codebase:
        modules: dict[str, Module] = {}
        for directory, prefix in PACKAGES.items():
            for path in sorted(directory.rglob("*.py")):
                parts = list(path.relative_to(directory).with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts.pop()
                name = ".".join([prefix, *parts])
                modules[name] = Module(name, path, ast.parse(path.read_text(), str(path)))
        codebase = Codebase(modules)
        for module in modules.values():
            codebase._index(module)
        return codebase

    def _index(self, module: Module) -> None:
        package = module.name if module.path.name == "__init__.py" else module.name.rpartition(".")[0]
        for node in module.tree.body:
            if isinstance(node, ast.ClassDef):
                module.classes[node.name] = node
                module.scope[node.name] = f"{module.name}:{node.name}"
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                module.functions[node.name] = node
                module.scope[node.name] = f"{module.name}:{node.name}"
        for child in ast.walk(module.tree):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.asname:
                        module.scope[alias.asname] = alias.name
                    else:
                        module.scope.setdefault(alias.name.split(".")[0], alias.name.split(".")[0])
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in child.names:
                    submodule = f"{base}.{alias.name}"
                    target = submodule if submodule in self.modules else f"{base}:{alias.name}"
                    module.scope[alias.asname or alias.name] = target

    def resolve(self, symbol: str) -> str | None:
        """Follow re-exports (``from .x import Y`` in a package) to where ``symbol`` is defined."""
        for _ in range(20):
            module_name, _, name = symbol.partition(":")
            module = self.modules.get(module_name)
            if module is None:
                return None
            if not name:
                return symbol
            if name in module.classes or name in module.functions:
                return symbol
            if name not in module.scope:
                return None
            symbol = module.scope[name]
        return None

    def class_node(self, symbol: str) -> ast.ClassDef | None:
        module_name, _, name = symbol.partition(":")
        module = self.modules.get(module_name)
        return module.classes.get(name) if module else None


def _units_of_class(symbol: str, node: ast.ClassDef) -> dict[str, ast.AST]:
    return {f"{symbol}.{item.name}": item for item in node.body
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)}


def _body_only(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a module's or class's own code: not inside its functions (nor nested classes)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from child.decorator_list
            yield from child.args.defaults
            continue
        if isinstance(child, ast.ClassDef):
            yield from child.decorator_list
            yield from child.bases
            continue
        yield child
        yield from _body_only(child)


def unit_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes a unit runs: a module's or class's own code, or a function's whole body."""
    return _body_only(node) if isinstance(node, ast.Module | ast.ClassDef) else ast.walk(node)


def unit_class(unit: str) -> str | None:
    """"mod:Class.method" -> "mod:Class" (None for module-level functions and code)."""
    module, _, name = unit.partition(":")
    head, dot, _ = name.partition(".")
    return f"{module}:{head}" if dot else None


@dataclass
class Reach:
    """The reachable units of one component and what they contain."""

    codebase: Codebase
    units: dict[str, tuple[str, ast.AST]] = field(default_factory=dict)  # unit id -> (module, node)
    live_classes: set[str] = field(default_factory=set)
    attributes: set[str] = field(default_factory=set)
    modules: set[str] = field(default_factory=set)

    def run(self, entry: str) -> Reach:
        """``entry`` is "module:function" (or "module:Class.method")."""
        resolved = self.codebase.resolve(entry.split(".", 1)[0] if "." in entry.partition(":")[2] else entry)
        if resolved is None:
            raise LookupError(f"entry point {entry} not found")
        todo: list[tuple[str, str, ast.AST]] = []
        self._add_symbol(entry if ":" in entry else resolved, todo)
        while True:
            while todo:
                unit, module, node = todo.pop()
                if unit in self.units:
                    continue
                self.units[unit] = (module, node)
                self._scan(module, node, todo)
            before = len(todo)
            for cls in sorted(self.live_classes):
                class_node = self.codebase.class_node(cls)
                assert class_node is not None
                for unit, method in _units_of_class(cls, class_node).items():
                    name = unit.rpartition(".")[2]
                    if unit not in self.units and (name in self.attributes or name.startswith("__")):
                        todo.append((unit, cls.partition(":")[0], method))
            if len(todo) == before == 0:
                return self

    def _add_symbol(self, symbol: str, todo: list[tuple[str, str, ast.AST]]) -> None:
        module_name, _, name = symbol.partition(":")
        module = self.codebase.modules.get(module_name)
        if module is None:
            return
        if module_name not in self.modules:
            self.modules.add(module_name)
            todo.append((f"{module_name}:<module>", module_name, module.tree))
        if not name:
            return
        head, _, method = name.partition(".")
        if head in module.functions:
            todo.append((symbol, module_name, module.functions[head]))
        elif head in module.classes:
            self._make_live(f"{module_name}:{head}", todo)
            if method:
                for unit, node in _units_of_class(f"{module_name}:{head}", module.classes[head]).items():
                    if unit == symbol:
                        todo.append((unit, module_name, node))

    def _make_live(self, cls: str, todo: list[tuple[str, str, ast.AST]]) -> None:
        if cls in self.live_classes:
            return
        self.live_classes.add(cls)
        node = self.codebase.class_node(cls)
        assert node is not None
        module_name = cls.partition(":")[0]
        todo.append((f"{cls}.<body>", module_name, node))
        for base in node.bases:
            target = self._resolve_expr(module_name, base)
            if target and self.codebase.class_node(target) is not None:
                self._make_live(target, todo)

    def _resolve_expr(self, module_name: str, node: ast.AST) -> str | None:
        """The project symbol a Name or a dotted module attribute refers to, if any."""
        module = self.codebase.modules[module_name]
        if isinstance(node, ast.Subscript):  # Generic[...] bases
            node = node.value
        if isinstance(node, ast.Name) and node.id in module.scope:
            return self.codebase.resolve(module.scope[node.id])
        if isinstance(node, ast.Attribute):
            base = self._resolve_expr(module_name, node.value)
            if base is not None and ":" not in base:
                return self.codebase.resolve(f"{base}:{node.attr}") or self.codebase.resolve(f"{base}.{node.attr}")
        return None

    def _scan(self, module_name: str, node: ast.AST, todo: list[tuple[str, str, ast.AST]]) -> None:
        for child in unit_nodes(node):
            if isinstance(child, ast.Attribute):
                self.attributes.add(child.attr)
            if isinstance(child, ast.Name | ast.Attribute):
                target = self._resolve_expr(module_name, child)
                if target is not None:
                    self._add_symbol(target, todo)


# ---------------------------------------------------------------- AWS operations in reached code


@cache
def service_operations() -> dict[str, dict[str, str]]:
    """boto3 service -> {snake_case method: OperationName}, for the services Airlock may use."""
    import botocore.session
    from botocore import xform_name

    session = botocore.session.get_session()
    out = {}
    for service in ("s3", "kms", "lambda", "secretsmanager", "sns", "dynamodb", "athena", "glue", "sqs", "sts"):
        model = session.get_service_model(service)
        out[service] = {xform_name(op): op for op in model.operation_names}
    return out


def _receiver_name(node: ast.AST) -> str:
    """The name a call's receiver goes by: ``self._client`` -> "_client", ``s3_client()`` -> "s3_client"."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        return _receiver_name(node.func)
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return str(node.slice.value)
    return ""


def _where(module: Module, node: ast.AST) -> str:
    return f"{module.path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"


def _created_services(reach: Reach) -> set[str]:
    services = set()
    for _, node in reach.units.values():
        for child in unit_nodes(node):
            if (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) and child.func.attr == "client"
                    and child.args and isinstance(child.args[0], ast.Constant)):
                services.add(str(child.args[0].value))
    return services


def _boto3_calls(reach: Reach, ambiguous: list[str]) -> list[AwsCall]:
    services = _created_services(reach)
    operations = service_operations()
    calls = []
    for module_name, node in reach.units.values():
        module = reach.codebase.modules[module_name]
        for child in unit_nodes(node):
            if not (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)):
                continue
            if "client" not in _receiver_name(child.func.value).lower():
                continue
            method = child.func.attr
            if method == "get_paginator" and child.args and isinstance(child.args[0], ast.Constant):
                method = str(child.args[0].value)
            owners = [s for s in sorted(services) if method in operations.get(s, {})]
            if len(owners) > 1:
                ambiguous.append(f"{_where(module, child)}: {method} is an operation of {owners}")
            for service in owners:
                keywords = frozenset(k.arg for k in child.keywords if k.arg)
                calls.append(AwsCall(service, operations[service][method], _where(module, child), keywords))
    return calls


# aws_lambda_powertools.utilities.parameters functions the project uses -> the operation they call
# (add one here before using another: an unknown one would go unseen).
POWERTOOLS_PARAMETERS = "aws_lambda_powertools.utilities.parameters"
POWERTOOLS_OPERATIONS = {"get_secret": ("secretsmanager", "GetSecretValue")}


def _powertools_calls(reach: Reach) -> list[AwsCall]:
    """``parameters.get_secret(...)`` (or ``get_secret(...)`` imported from the utility)."""
    calls = []
    for module_name, node in reach.units.values():
        module = reach.codebase.modules[module_name]
        for child in unit_nodes(node):
            if not isinstance(child, ast.Call):
                continue
            func = child.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                owner, name = module.scope.get(func.value.id, "").replace(":", "."), func.attr
            elif isinstance(func, ast.Name):
                owner, _, name = module.scope.get(func.id, "").rpartition(":")
            else:
                continue
            if owner == POWERTOOLS_PARAMETERS and name in POWERTOOLS_OPERATIONS:
                service, operation = POWERTOOLS_OPERATIONS[name]
                calls.append(AwsCall(service, operation, _where(module, child)))
    return calls


def _pynamodb_models(codebase: Codebase) -> dict[str, ast.ClassDef]:
    """Classes deriving (in the project) from pynamodb's Model, by symbol."""
    models: dict[str, ast.ClassDef] = {}
    changed = True
    while changed:
        changed = False
        for module in codebase.modules.values():
            for name, node in module.classes.items():
                symbol = f"{module.name}:{name}"
                if symbol in models:
                    continue
                for base in node.bases:
                    target = module.scope.get(base.id) if isinstance(base, ast.Name) else None
                    if target == "pynamodb.models:Model" or (target and codebase.resolve(target) in models):
                        models[symbol] = node
                        changed = True
    return models


_INDEX_BASES = {"pynamodb.indexes:GlobalSecondaryIndex", "pynamodb.indexes:LocalSecondaryIndex"}


def _index_attributes(codebase: Codebase, module_name: str, node: ast.ClassDef) -> dict[str, str]:
    """Class attributes holding a secondary index (``by_identity = _ByIdentity()``) -> the index's name."""
    module = codebase.modules[module_name]
    found: dict[str, str] = {}
    for item in node.body:
        if not (isinstance(item, ast.Assign) and isinstance(item.value, ast.Call)
                and isinstance(item.value.func, ast.Name)):
            continue
        index_class = codebase.class_node(module.scope.get(item.value.func.id, ""))
        bases = {module.scope.get(b.value.id if isinstance(b, ast.Subscript) and isinstance(b.value, ast.Name)
                                  else getattr(b, "id", ""), "") for b in (index_class.bases if index_class else [])}
        if index_class is not None and bases & _INDEX_BASES:
            name = _meta_value(index_class, "index_name")
            found.update((t.id, name or t.id) for t in item.targets if isinstance(t, ast.Name))
    return found


def _meta_value(node: ast.ClassDef, key: str) -> str | None:
    """A string constant of the class's ``Meta`` (``index_name = "by-status"``)."""
    for meta in (n for n in node.body if isinstance(n, ast.ClassDef) and n.name == "Meta"):
        for item in meta.body:
            if (isinstance(item, ast.Assign) and isinstance(item.value, ast.Constant)
                    and any(isinstance(t, ast.Name) and t.id == key for t in item.targets)):
                return str(item.value.value)
    return None


@dataclass(frozen=True, slots=True)
class _Binding:
    model: str
    table_field: str | None


def _settings_field(node: ast.AST) -> str | None:
    return node.attr if isinstance(node, ast.Attribute) else None


def _pynamodb_calls(reach: Reach) -> list[AwsCall]:
    codebase = reach.codebase
    models = _pynamodb_models(codebase)
    indexes = {symbol: _index_attributes(codebase, symbol.partition(":")[0], node) for symbol, node in models.items()}
    # Attributes bound to a model, per class: self._m = _bind(Model, settings.x_table, ...)
    bound: dict[str, dict[str, _Binding]] = {}
    for unit, (module_name, node) in reach.units.items():
        for child in unit_nodes(node):
            if isinstance(child, ast.Assign) and isinstance(child.value, ast.Call):
                binding = _binding_of(reach, module_name, child.value, models)
                for target in child.targets:
                    if binding and isinstance(target, ast.Attribute) and (cls := unit_class(unit)):
                        bound.setdefault(cls, {})[target.attr] = binding
    calls = []
    for unit, (module_name, node) in reach.units.items():
        module = codebase.modules[module_name]
        attributes: dict[str, _Binding] = {}
        for cls in reversed(_class_and_bases(reach, unit_class(unit))):  # a subclass's own bindings win
            attributes.update(bound.get(cls, {}))
        local: dict[str, _Binding] = {}
        for child in unit_nodes(node):  # assignments first: a name flows into later statements
            value, targets = None, []
            if isinstance(child, ast.Assign):
                value, targets = child.value, child.targets
            elif isinstance(child, ast.For | ast.AsyncFor | ast.comprehension):
                value, targets = child.iter, [child.target]
            if value is not None:
                binding = _rooted(value, local, attributes) or _binding_of(reach, module_name, value, models)
                for target in targets:
                    if binding and isinstance(target, ast.Name):
                        local[target.id] = binding
        for child in unit_nodes(node):
            if not (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)):
                continue
            operation = PYNAMODB_OPERATIONS.get(child.func.attr)
            receiver = child.func.value
            binding = _rooted(receiver, local, attributes)
            if binding is None:
                model = reach._resolve_expr(module_name, receiver)
                binding = _Binding(model, None) if model is not None and model in models else None
            if operation is None or binding is None:
                continue
            on_index = None
            if isinstance(receiver, ast.Attribute) and _rooted(receiver.value, local, attributes) is not None:
                # m.<field>.exists() is a condition, not a call; m.<index>.query() queries the index.
                on_index = indexes.get(binding.model, {}).get(receiver.attr)
                if on_index is None:
                    continue
            keywords = frozenset(k.arg for k in child.keywords if k.arg)
            calls.append(AwsCall("dynamodb", operation, _where(module, child), keywords, binding.table_field, on_index))
    return calls


def _class_and_bases(reach: Reach, cls: str | None) -> list[str]:
    """``cls`` and the project classes it derives from (attributes bound in a base's ``__init__``)."""
    out: list[str] = []
    todo = [cls] if cls else []
    while todo:
        symbol = todo.pop()
        node = reach.codebase.class_node(symbol)
        if symbol in out or node is None:
            continue
        out.append(symbol)
        todo.extend(t for b in node.bases if (t := reach._resolve_expr(symbol.partition(":")[0], b)))
    return out


def _binding_of(reach: Reach, module_name: str, call: ast.AST, models: dict[str, ast.ClassDef]) -> _Binding | None:
    """``_bind(Model, settings.table, ...)``: a call whose first argument is a model class."""
    if not (isinstance(call, ast.Call) and call.args):
        return None
    target = reach._resolve_expr(module_name, call.args[0])
    if target not in models:
        return None
    return _Binding(target, _settings_field(call.args[1]) if len(call.args) > 1 else None)


def _rooted(node: ast.AST, local: dict[str, _Binding], attributes: dict[str, _Binding]) -> _Binding | None:
    """The model binding an expression derives from (``m``, ``m(...)``, ``self._m.by_x``), if any."""
    while True:
        if isinstance(node, ast.Name):
            return local.get(node.id)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self" and node.attr in attributes:
                return attributes[node.attr]
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        else:
            return None


@dataclass(frozen=True)
class ComponentCalls:
    entry: str
    calls: tuple[AwsCall, ...]
    attributes: frozenset[str]  # every attribute name reached code uses (settings fields among them)
    ambiguous: tuple[str, ...]


def component_calls(entry: str, codebase: Codebase | None = None) -> ComponentCalls:
    """Every AWS operation reachable from ``entry`` ("module:function")."""
    reach = Reach(codebase or Codebase.load()).run(entry)
    ambiguous: list[str] = []
    calls = _boto3_calls(reach, ambiguous) + _powertools_calls(reach) + _pynamodb_calls(reach)
    return ComponentCalls(entry, tuple(calls), frozenset(reach.attributes), tuple(ambiguous))


# ---------------------------------------------------------------- what IAM asks for each operation

_IAM_PREFIX = {"lambda": "lambda", "s3": "s3", "dynamodb": "dynamodb", "kms": "kms", "sns": "sns", "sqs": "sqs",
               "secretsmanager": "secretsmanager", "athena": "athena", "glue": "glue", "sts": "sts"}  # fmt: skip
# Operations whose IAM action is not the operation's own name.
_IAM_ACTION = {
    ("s3", "HeadObject"): "GetObject",
    ("s3", "ListObjectsV2"): "ListBucket",
    ("s3", "ListObjects"): "ListBucket",
    ("s3", "ListObjectVersions"): "ListBucketVersions",
    ("lambda", "Invoke"): "InvokeFunction",
}
# Keyword arguments that need one more action (S3 authorizes them separately).
_IAM_EXTRA = {
    ("s3", "PutObject", "ObjectLockMode"): "PutObjectRetention",
    ("s3", "PutObject", "ObjectLockRetainUntilDate"): "PutObjectRetention",
    ("s3", "PutObject", "ObjectLockLegalHoldStatus"): "PutObjectLegalHold",
    ("s3", "GetObject", "VersionId"): "GetObjectVersion",
}
# What a service does on the caller's behalf with the caller's permissions. Athena reads the table's
# definition from Glue and the data from S3, and writes results to the workgroup's S3 location.
IMPLIED = {
    ("athena", "StartQueryExecution"): (
        "glue:GetDatabase", "glue:GetTable", "s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation",
        "s3:PutObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload",
    ),
}  # fmt: skip


def iam_actions(call: AwsCall) -> set[str]:
    """The IAM actions a call needs (without what the service then does on the caller's behalf)."""
    prefix = _IAM_PREFIX[call.service]
    actions = {f"{prefix}:{_IAM_ACTION.get((call.service, call.operation), call.operation)}"}
    actions.update(f"{prefix}:{extra}" for (service, operation, keyword), extra in _IAM_EXTRA.items()
                   if (service, operation) == (call.service, call.operation) and keyword in call.keywords)
    actions.update(IMPLIED.get((call.service, call.operation), ()))
    return actions

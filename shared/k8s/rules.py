"""The policy's ``kubernetes`` rules: ordered rules that map each effect of an API request to allow / deny /
hold, judged like SQL statements (``shared/guard/verdict.py``).

```yaml
kubernetes:
  default: allow             # an effect no rule matched
  unknown: deny              # a request Airlock could not read
  access: read_write         # or read_only: only get, list, watch (and reviews of oneself)
  rules:
    - name: no-host-access
      match: {pod_spec: [privileged, host_path, host_network, host_pid, host_ipc, node_socket]}
      action: deny
      reason: pods may not reach the node
    - name: no-bulk-deletes
      match: {verbs: [deletecollection]}
      action: deny
    - name: prod-deployment-deletes-need-approval
      match: {verbs: [delete], groups: [apps], resources: [deployments], namespaces: [prod]}
      action: hold
      approvers: sre
```

A rule matches an effect when every criterion it names matches; within a criterion any listed value may
match. ``verbs`` are request-info verbs (``*``: any); exec, attach and port-forward are ``create`` on
``pods/exec`` ... whatever the HTTP method. ``groups`` are globs on the API group (``""`` is the core
group). ``resources`` are as RBAC writes them: ``pods`` (not its subresources), ``pods/exec``, ``pods/*``,
``*/scale``, and ``*`` for every resource and subresource. ``namespaces`` and ``names`` are globs; a
request that names none (a list across every namespace, a deletecollection, a create with generateName)
*may* match them, so a deny or hold rule applies and an allow rule does not. ``paths`` are globs on the
path of a non-resource request (``/metrics``, ``/logs/*``). ``access: read|write`` matches effects that
change nothing / something. ``pod_spec`` names pod features; the effect of a pod feature is only
matched by rules that name it, so an allow rule for ``create pods`` never allows a privileged one.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.guard.scope import RuleScope
from shared.guard.verdict import Action, Match
from shared.k8s.effects import PodFeature, RequestEffect


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KubernetesRuleMatch(RuleScope):
    """Criteria on one effect of a request, plus the rule's scope (identities, targets)."""

    verbs: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    resources: list[str] = Field(default_factory=list)
    namespaces: list[str] = Field(default_factory=list)
    names: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)
    pod_spec: list[PodFeature] = Field(default_factory=list)
    access: Literal["read", "write", "any"] = "any"

    @field_validator("verbs")
    @classmethod
    def _lower(cls, values: list[str]) -> list[str]:
        return [v.lower() for v in values]

    @model_validator(mode="after")
    def _no_databases(self) -> KubernetesRuleMatch:
        if self.databases:
            raise ValueError("Kubernetes rules have no databases: use namespaces")
        if self.paths and (self.groups or self.resources or self.namespaces or self.names):
            raise ValueError("paths match non-resource requests; groups, resources, namespaces and names "
                             "match resource requests: a rule cannot name both")  # fmt: skip
        return self

    def test(self, effect: RequestEffect) -> Match:
        if (effect.feature is None) == bool(self.pod_spec):
            return Match.NO  # pod features are matched only by rules that name them, and only those
        if effect.feature is not None and effect.feature not in self.pod_spec:
            return Match.NO
        if self.verbs and "*" not in self.verbs and effect.verb not in self.verbs:
            return Match.NO
        if self.access != "any" and effect.changes is (self.access == "read"):
            return Match.NO
        if self.paths:
            if effect.resource_request or not any(fnmatchcase(effect.path, g) for g in self.paths):
                return Match.NO
            return Match.YES
        if not (self.groups or self.resources or self.namespaces or self.names):
            return Match.YES
        if not effect.resource_request:
            return Match.NO
        if self.groups and not any(fnmatchcase(effect.group, g) for g in self.groups):
            return Match.NO
        if self.resources and not any(resource_matches(g, effect.resource, effect.subresource) for g in self.resources):
            return Match.NO
        result = Match.YES
        if self.namespaces:
            if effect.namespace:
                if not any(fnmatchcase(effect.namespace, g) for g in self.namespaces):
                    return Match.NO
            elif effect.spans_namespaces:
                result = Match.MAYBE
            else:
                return Match.NO  # a cluster-scoped resource is in no namespace
        if self.names:
            if effect.name:
                if not any(fnmatchcase(effect.name, g) for g in self.names):
                    return Match.NO
            else:
                result = Match.MAYBE
        return result


def resource_matches(glob: str, resource: str, subresource: str) -> bool:
    """RBAC's resource matching, with globs: ``*`` is everything; ``pods`` the resource alone; ``pods/exec``,
    ``pods/*`` and ``*/exec`` name subresources."""
    if glob == "*":
        return True
    name_glob, slash, sub_glob = glob.partition("/")
    if not slash:
        return not subresource and fnmatchcase(resource, name_glob)
    return bool(subresource) and fnmatchcase(resource, name_glob) and fnmatchcase(subresource, sub_glob)


class KubernetesRule(_Strict):
    name: str = Field(min_length=1, max_length=128)
    match: KubernetesRuleMatch = Field(default_factory=KubernetesRuleMatch)
    action: Action
    # Shown to the agent with a deny or hold: say what to do instead.
    reason: str = ""
    # A hold rule's approver group (policy ``approvals.approver_groups``); None: ``approvals.default_approvers``.
    approvers: str | None = None

    def test(self, effect: RequestEffect) -> Match:
        return self.match.test(effect)


def unique_rule_names(rules: list[KubernetesRule]) -> list[KubernetesRule]:
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise ValueError(f"duplicate rule name {rule.name!r}")
        seen.add(rule.name)
    return rules


def rule_warnings(rules: list[KubernetesRule], section: str = "kubernetes") -> list[str]:
    """Rules that say less than they seem to: criteria that match every request."""
    out = []
    for i, rule in enumerate(rules):
        m = rule.match
        if not (m.verbs or m.groups or m.resources or m.namespaces or m.names or m.paths or m.pod_spec) \
                and m.access == "any":
            out.append(f"{section}.rules[{i}] ({rule.name}): matches every request"
                       f"{' in its scope' if m.scoped() else ''}")  # fmt: skip
        elif "*" in m.resources and not (m.verbs or m.groups or m.namespaces or m.names):
            out.append(f"{section}.rules[{i}] ({rule.name}): resources ['*'] match every resource request")
    return out


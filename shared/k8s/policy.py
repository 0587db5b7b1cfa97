"""The policy file's Kubernetes pieces: cluster targets, what a binding allows on one, and the request rules.

```yaml
targets:
  prod-cluster:
    engine: kubernetes
    server: https://k8s.internal:6443
    ca_pem: "-----BEGIN CERTIFICATE-----..."    # the API server's CA (null: system trust store)
    credential_secret: airlock/targets/prod     # Secrets Manager: {"token": "..."}
bindings:
  - identity: deployer
    target: prod-cluster
    kubernetes: {namespaces: [default, prod], user: "airlock:deployer", groups: [deployers]}
kubernetes:                                     # rules on API requests: shared/k8s/rules.py, docs/policy.md
  default: allow
  unknown: deny
  rules:
    - {name: no-host-access, match: {pod_spec: [privileged, host_path, node_socket]}, action: deny}
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.guard.verdict import Action
from shared.k8s.rules import KubernetesRule, rule_warnings, unique_rule_names


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KubernetesTargetSpec(_Strict):
    engine: Literal["kubernetes"]
    server: str = Field(pattern=r"^https://[^\s]+$")
    ca_pem: str | None = None
    # Secrets Manager id of a JSON secret {"token": "<service-account token>"} (or an EKS cluster reference).
    credential_secret: str = Field(min_length=1)


class KubernetesAccess(_Strict):
    """What a binding allows on a cluster, and whom the gateway impersonates for it."""

    namespaces: list[str] = Field(default_factory=list)  # globs; empty: every namespace
    user: str | None = None  # Impersonate-User (None: "airlock:<identity>")
    groups: list[str] = Field(default_factory=list)  # Impersonate-Group
    # Secret values in responses: redacted (the default), or shown (a deploy tool such as Helm, which keeps
    # its releases in Secrets, needs them). Recordings never hold them either way.
    secrets: Literal["redact", "reveal"] = "redact"


class KubernetesGuardrails(_Strict):
    """The ``kubernetes`` section: rules on API requests (``shared/k8s``); judged like SQL."""

    rules: list[KubernetesRule] = Field(default_factory=list)
    # read_only: only effects that change nothing (get, list, watch, discovery, reviews of oneself).
    access: Literal["read_write", "read_only"] = "read_write"
    default: Action = Action.ALLOW
    unknown: Action = Action.DENY
    dry_run: bool = False

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[KubernetesRule]) -> list[KubernetesRule]:
        return unique_rule_names(rules)

    def warnings(self) -> list[str]:
        return rule_warnings(self.rules)

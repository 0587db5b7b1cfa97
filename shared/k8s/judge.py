"""Judge Kubernetes API requests against a session's rules: one ``Verdict`` per request.

A request becomes effects (``effects.RequestEffect``): itself, and each pod feature its body asks for.
Each effect is judged on its own and the request takes the strictest verdict (deny > hold > allow,
``shared/guard/verdict.py``). Per effect:
1. an effect Airlock could not read (``unknown``: a body it cannot decode, a path the API server would
   refuse) gets the policy's ``unknown`` action; no rule can allow it by accident;
2. the binding's namespaces: a request in another namespace, or across every namespace, is denied;
3. with ``access: read_only``, an effect that can change something is denied;
4. otherwise the first rule that matches it decides, made stricter by any deny or hold rule before it that
   *may* match (a request that names no namespace or no name);
5. otherwise the policy's ``default``, except for discovery (``/api``, ``/apis``, OpenAPI, ``/version``),
   which changes nothing and is allowed unless a rule says otherwise.
With ``dry_run`` every verdict is still made and recorded, but ``enforced`` is False.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any

from shared.guard.verdict import Action, EffectVerdict, judge_effect, stricter, strictest
from shared.k8s.body import DecodedBody
from shared.k8s.effects import CLUSTER_SCOPED, CONNECT_SUBRESOURCES, RequestEffect, is_discovery
from shared.k8s.podspec import BodyUnjudgeable, json_patch_values, pod_features
from shared.k8s.policy import KubernetesAccess, KubernetesGuardrails
from shared.k8s.requestinfo import RequestInfo
from shared.k8s.rules import KubernetesRule

UNKNOWN_RULE = "unknown"
DEFAULT_RULE = "default"
READ_ONLY_RULE = "read_only"
NAMESPACES_RULE = "namespaces"
READ_ONLY_REASON = "this identity is read-only here: only requests that change nothing may run"


@dataclass(frozen=True, slots=True)
class KubeRequest:
    """What is judged of one request: its request-info, and its body if it has one."""

    method: str
    info: RequestInfo
    body: DecodedBody | None = None
    # Why the request target itself could not be read (a bad escape, an empty or dot segment).
    target_error: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    rule: str
    reason: str
    enforced: bool
    effect: RequestEffect  # the effect that decided
    effects: tuple[RequestEffect, ...] = field(default=())

    @property
    def blocks(self) -> bool:
        """The gateway must not forward this request (deny, or a hold until it is approved)."""
        return self.enforced and self.action is not Action.ALLOW

    def message(self) -> str:
        """What the agent reads: ``Airlock denied delete deployments.apps "x" in namespace "prod": rule ...``."""
        verb = {Action.ALLOW: "allowed", Action.DENY: "denied", Action.HOLD: "held"}[self.action]
        if self.rule == UNKNOWN_RULE:
            return f"Airlock {verb} a request it could not read: {self.reason}"
        head = f"Airlock {verb} {self.effect.describe()}: rule \"{self.rule}\""
        return f"{head}: {self.reason}" if self.reason else head

    @property
    def kinds(self) -> list[str]:
        """The verbs (and pod features) of the request: an approval's kinds."""
        return sorted({e.verb for e in self.effects if e.verb} | {e.feature.value for e in self.effects if e.feature})

    @property
    def resources(self) -> list[str]:
        """The resources it touches (``deployments.apps``, ``pods/exec``, a path): an approval's tables."""
        out = set()
        for e in self.effects:
            if e.resource_request and e.resource:
                group = f".{e.group}" if e.group else ""
                out.add(e.resource + group + (f"/{e.subresource}" if e.subresource else ""))
            elif e.path:
                out.add(e.path)
        return sorted(out)


def request_effects(request: KubeRequest) -> list[RequestEffect]:
    """The effects of one request (see the module docstring of ``effects``)."""
    info = request.info
    if request.target_error is not None:
        return [RequestEffect(verb="", resource_request=False, path=info.path, unknown=request.target_error)]
    if info.error:
        return [RequestEffect(verb=info.verb, resource_request=info.is_resource, path=info.path, unknown=info.error)]
    body = request.body
    if body is not None and body.error is not None:
        return [replace(_itself(request, None), unknown=body.error)]
    value = body.value if body is not None else None
    itself = _itself(request, value)
    if not info.is_resource:
        return [itself]
    if not itself.verb:
        return [replace(itself, unknown=f"the HTTP method {request.method} is no API verb")]
    effects = [itself]
    if value is not None:
        try:
            written = json_patch_values(value) if body is not None and body.patch_type == "json" else [value]
            effects += [replace(itself, feature=f, where=w) for v in written for f, w in pod_features(v)]
        except BodyUnjudgeable as e:
            return [replace(itself, unknown=str(e))]
    return effects


def _itself(request: KubeRequest, value: Any) -> RequestEffect:
    info = request.info
    if not info.is_resource:
        return RequestEffect(verb=info.verb, resource_request=False, path="/" + info.path.strip("/"),
                             discovery=is_discovery(request.method.upper(), info.path))  # fmt: skip
    verb = "create" if info.subresource in CONNECT_SUBRESOURCES else info.verb
    name, namespace = info.name, info.namespace
    if not name and info.verb == "create" and not info.subresource and isinstance(value, dict):
        metadata = value.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("name"), str):
            name = metadata["name"]  # POST names its object in the body (none with generateName)
    if info.resource == "namespaces" and not info.group and not namespace:
        namespace = name  # a Namespace is its own namespace, also when it is created
    spans = not namespace and info.resource not in CLUSTER_SCOPED
    return RequestEffect(verb=verb, resource_request=True, group=info.group, resource=info.resource,
                         subresource=info.subresource, namespace=namespace, name=name, spans_namespaces=spans)


class KubernetesJudge:
    """Stateless; share one per grant (rules for other identities and targets are dropped once, here)."""

    def __init__(self, policy: KubernetesGuardrails, access: KubernetesAccess, *, identity: str | None = None,
                 target: str | None = None) -> None:  # fmt: skip
        self.policy = policy
        self.access = access
        self.rules: tuple[KubernetesRule, ...] = tuple(
            r for r in policy.rules if r.match.in_scope(identity, target, None)
        )
        self.read_only = policy.access == "read_only"
        self._default_reason = "" if policy.default is Action.ALLOW else "not allowed by default"

    def judge(self, request: KubeRequest) -> Verdict:
        effects = request_effects(request)
        verdicts = [self._judge_effect(e) for e in effects]
        worst = strictest(verdicts)
        assert worst is not None, "a request always has at least one effect"
        return Verdict(worst.action, worst.rule, worst.reason, not self.policy.dry_run, worst.effect, tuple(effects))

    def _judge_effect(self, effect: RequestEffect) -> EffectVerdict[RequestEffect]:
        if effect.unknown is not None:
            return EffectVerdict(effect, self.policy.unknown, UNKNOWN_RULE, effect.unknown)
        if effect.discovery:
            verdict = judge_effect(effect, self.rules, Action.ALLOW)
        else:
            verdict = judge_effect(effect, self.rules, self.policy.default, DEFAULT_RULE, self._default_reason)
        outside = self._outside_namespaces(effect)
        if outside is not None:
            verdict = stricter(verdict, EffectVerdict(effect, Action.DENY, NAMESPACES_RULE, outside))
        if self.read_only and effect.changes:
            verdict = stricter(verdict, EffectVerdict(effect, Action.DENY, READ_ONLY_RULE, READ_ONLY_REASON))
        return verdict

    def _outside_namespaces(self, effect: RequestEffect) -> str | None:
        """Why the effect is outside the binding's namespaces (None: inside, or unrestricted)."""
        allowed = self.access.namespaces
        if not allowed or not effect.resource_request:
            return None
        listed = ", ".join(allowed)
        if effect.namespace:
            if any(fnmatchcase(effect.namespace, g) for g in allowed):
                return None
            return f"this identity may use only the namespaces {listed}"
        if effect.spans_namespaces:
            return f"this identity may use only the namespaces {listed}: name one (-n NAMESPACE)"
        return None

"""Authentication, impersonation and authorization of the stand-in, with an audit record of each request.

Authentication: ``Authorization: Bearer <token>`` with a configured static token, or a ServiceAccount token
the stand-in issued itself (``serviceaccounts/<name>/token``: an ES256 JWT, accepted while the account
exists with the same uid). No credential or a wrong one is 401 Unauthorized (anonymous auth is off).

Impersonation (``Impersonate-User``, ``Impersonate-Group``, ``Impersonate-Uid``): allowed only to identities
configured with ``impersonate`` (the API server's ``impersonate`` verb on users/groups/serviceaccounts); any
other gets 403 naming what it may not impersonate. Groups without a user is an error, as in the API server.
The impersonated user gets ``system:authenticated`` (and the ServiceAccount groups for
``system:serviceaccount:<ns>:<name>``).

Authorization, a small stand-in for RBAC: non-resource requests (discovery, OpenAPI, version) are allowed to
every authenticated user; resource requests are allowed when a rule names the user or one of its groups, the
verb, the resource (with ``/subresource``) and, when the rule lists namespaces, the namespace. The verb is the
request-info verb: exec over WebSocket is a ``get`` of ``pods/exec``, over SPDY a ``create``. Default rules
(``rules.json`` in the state directory replaces them): ``system:masters`` may do everything; ``airlock:view``
may get, list and watch namespaces, pods, pods/log, configmaps, deployments and serviceaccounts (not secrets);
``airlock:edit`` may also do anything to pods (exec included), configmaps, secrets, deployments,
serviceaccounts and serviceaccount tokens. The static tokens (``tokens.json``) are ``admin``
(kubernetes-admin, system:masters, may impersonate), ``gateway`` (a ServiceAccount-like identity with no
rights of its own that may impersonate: the credential a gateway holds) and ``viewer`` (airlock:view, may not
impersonate).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .requestinfo import RequestInfo
from .status import ApiError, forbidden, unauthorized

Obj = dict[str, Any]
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def to_json(self) -> Obj:
        body: Obj = {"username": self.name}
        if self.uid:
            body["uid"] = self.uid
        body["groups"] = list(self.groups)
        if self.extra:
            body["extra"] = {k: list(v) for k, v in self.extra}
        return body


@dataclass(frozen=True, slots=True)
class StaticToken:
    """A configured credential; ``role`` names it in the tokens file (admin, gateway, viewer, ...)."""

    role: str
    token: str
    user: UserInfo
    impersonate: bool = False


@dataclass(frozen=True, slots=True)
class Rule:
    """Allows ``verbs`` on ``resources`` (``pods``, ``pods/exec``, ``*``) in ``namespaces`` (empty: all) to
    ``users`` and members of ``groups``. Resources of any API group."""

    verbs: tuple[str, ...]
    resources: tuple[str, ...]
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()

    def allows(self, user: UserInfo, info: RequestInfo) -> bool:
        if user.name not in self.users and not set(user.groups) & set(self.groups):
            return False
        if "*" not in self.verbs and info.verb not in self.verbs:
            return False
        resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
        if "*" not in self.resources and resource not in self.resources:
            return False
        return not self.namespaces or info.namespace in self.namespaces


VIEW_RESOURCES = ("namespaces", "pods", "pods/log", "configmaps", "deployments", "serviceaccounts")
EDIT_RESOURCES = ("pods", "pods/exec", "pods/log", "configmaps", "secrets", "deployments", "serviceaccounts",
                  "serviceaccounts/token")
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(("*",), ("*",), groups=("system:masters",)),
    Rule(("create",), ("selfsubjectreviews", "selfsubjectaccessreviews"), groups=("system:authenticated",)),
    Rule(("get", "list", "watch"), VIEW_RESOURCES, groups=("airlock:view", "airlock:edit")),
    Rule(("*",), EDIT_RESOURCES, groups=("airlock:edit",)),
)


def default_tokens() -> list[StaticToken]:
    """Fresh credentials: an administrator, the gateway (impersonation only) and a viewer."""
    return [
        StaticToken("admin", secrets.token_urlsafe(32), UserInfo("kubernetes-admin", ("system:masters",)), True),
        StaticToken("gateway", secrets.token_urlsafe(32),
                    UserInfo("system:serviceaccount:airlock-system:airlock-gateway",
                             ("system:serviceaccounts", "system:serviceaccounts:airlock-system")), True),
        StaticToken("viewer", secrets.token_urlsafe(32), UserInfo("viewer", ("airlock:view",))),
    ]


def save_tokens(path: Path, tokens: list[StaticToken]) -> None:
    body = [{"role": t.role, "token": t.token, "user": t.user.name, "groups": list(t.user.groups),
             "impersonate": t.impersonate} for t in tokens]
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp")
    staging.touch(mode=0o600)
    staging.write_text(json.dumps(body, indent=2))
    staging.replace(path)


def load_tokens(path: Path) -> list[StaticToken]:
    return [StaticToken(t["role"], t["token"], UserInfo(t["user"], tuple(t.get("groups", ()))),
                        bool(t.get("impersonate"))) for t in json.loads(path.read_text())]


def load_rules(path: Path | None) -> tuple[Rule, ...]:
    """Rules from a JSON file (a list of Rule fields), or the defaults."""
    if path is None or not path.exists():
        return DEFAULT_RULES
    return tuple(Rule(**{k: tuple(v) for k, v in r.items()}) for r in json.loads(path.read_text()))


@dataclass
class ServiceAccountTokens:
    """Issues and verifies ServiceAccount JWTs with the stand-in's own key (kept in its state dir)."""

    key_path: Path
    _key: ec.EllipticCurvePrivateKey | None = None

    def _private_key(self) -> ec.EllipticCurvePrivateKey:
        if self._key is None:
            if self.key_path.exists():
                loaded = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
                assert isinstance(loaded, ec.EllipticCurvePrivateKey)
                self._key = loaded
            else:
                self._key = ec.generate_private_key(ec.SECP256R1())
                self.key_path.parent.mkdir(parents=True, exist_ok=True)
                self.key_path.touch(mode=0o600)
                self.key_path.write_bytes(self._key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return self._key

    def issue(self, namespace: str, name: str, uid: str, audiences: list[str], seconds: int) -> tuple[str, str]:
        """(token, expirationTimestamp)."""
        issued = dt.datetime.now(dt.UTC).replace(microsecond=0)
        expires = issued + dt.timedelta(seconds=seconds)
        claims = {
            "iss": SERVICE_ACCOUNT_ISSUER,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "aud": audiences,
            "iat": int(issued.timestamp()),
            "nbf": int(issued.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        }
        token = jwt.encode(claims, self._private_key(), algorithm="ES256", headers={"kid": "airlock-standin"})
        return token, expires.strftime("%Y-%m-%dT%H:%M:%SZ")

    def verify(self, token: str) -> tuple[str, str, str] | None:
        """(namespace, name, uid) of a valid token this stand-in issued, else None."""
        if token.count(".") != 2:
            return None
        try:
            claims = jwt.decode(token, self._private_key().public_key(), algorithms=["ES256"],
                                audience=SERVICE_ACCOUNT_ISSUER, issuer=SERVICE_ACCOUNT_ISSUER)
        except jwt.PyJWTError:
            return None
        info = claims.get("kubernetes.io", {})
        account = info.get("serviceaccount", {})
        return str(info.get("namespace", "")), str(account.get("name", "")), str(account.get("uid", ""))


@dataclass(frozen=True, slots=True)
class Identity:
    """Who made a request and on whose behalf it is judged."""

    authenticated: UserInfo
    impersonated: UserInfo | None = None

    @property
    def effective(self) -> UserInfo:
        return self.impersonated or self.authenticated


def service_account_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    return UserInfo(f"system:serviceaccount:{namespace}:{name}",
                    ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"), uid)


@dataclass
class Authenticator:
    tokens: list[StaticToken]
    service_accounts: ServiceAccountTokens
    rules: tuple[Rule, ...] = DEFAULT_RULES
    # Called with (namespace, name) to get a live ServiceAccount's uid (None if it does not exist).
    account_uid: Any = None
    _by_token: dict[str, StaticToken] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_token = {t.token: t for t in self.tokens}

    def authenticate(self, authorization: str | None) -> tuple[UserInfo, bool]:
        """(user, may impersonate); 401 for a missing or unknown credential."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthorized()
        static = self._by_token.get(token)
        if static is not None:
            groups = (*static.user.groups, "system:authenticated")
            return UserInfo(static.user.name, groups), static.impersonate
        verified = self.service_accounts.verify(token)
        if verified is not None and self.account_uid is not None:
            namespace, name, uid = verified
            if self.account_uid(namespace, name) == uid:
                return service_account_user(namespace, name, uid), False
        raise unauthorized()

    def impersonate(self, user: UserInfo, may: bool, headers: Mapping[str, str], groups: list[str]) -> Identity:
        """Apply impersonation headers; 403 if ``user`` may not impersonate."""
        target = headers.get("Impersonate-User", "")
        uid = headers.get("Impersonate-Uid", "")
        extra = tuple(
            (k[len("Impersonate-Extra-"):].lower(), tuple(v.split(",")))
            for k, v in headers.items() if k.lower().startswith("impersonate-extra-")
        )
        if not target and not groups and not uid and not extra:
            return Identity(user)
        if not target:
            raise ApiError(500, "InternalError",
                           f"Internal error occurred: requested {groups or [uid]} without impersonating a user",
                           {"causes": [{"message": "requested impersonation without a user"}]})
        if not may:
            if target.startswith("system:serviceaccount:") and target.count(":") == 3:
                _, _, namespace, name = target.split(":")
                raise forbidden("serviceaccounts", name, f'User "{user.name}" cannot impersonate resource '
                                f'"serviceaccounts" in API group "" in the namespace "{namespace}"')
            raise forbidden("users", target, f'User "{user.name}" cannot impersonate resource "users" in API '
                            'group "" at the cluster scope')
        if target.startswith("system:serviceaccount:") and target.count(":") == 3:
            _, _, namespace, name = target.split(":")
            account = service_account_user(namespace, name)
            all_groups = tuple(dict.fromkeys(list(account.groups) + groups))
        else:
            all_groups = tuple(dict.fromkeys(groups + ([] if target == "system:anonymous"
                                                       else ["system:authenticated"])))
        return Identity(user, UserInfo(target, all_groups, uid, extra))

    def authorize(self, user: UserInfo, info: RequestInfo) -> None:
        """403 unless a rule allows the request (non-resource requests: any authenticated user)."""
        if not info.is_resource:
            return
        if any(rule.allows(user, info) for rule in self.rules):
            return
        resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
        qualified = f"{info.resource}.{info.group}" if info.group else info.resource
        scope = f'in the namespace "{info.namespace}"' if info.namespace else "at the cluster scope"
        name = "" if info.name_from_selector else info.name
        raise forbidden(qualified, name, f'User "{user.name}" cannot {info.verb} resource "{resource}" in API '
                        f'group "{info.group}" {scope}', group=info.group)


def review(kind: str, body: Obj, user: UserInfo, authenticator: Authenticator) -> Obj:
    """Answer a SelfSubjectReview (who am I, impersonation applied) or a SelfSubjectAccessReview (may I)."""
    if kind == "SelfSubjectReview":
        return {"kind": kind, "apiVersion": "authentication.k8s.io/v1", "metadata": {"creationTimestamp": None},
                "status": {"userInfo": user.to_json()}}
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    attributes = spec.get("resourceAttributes")
    allowed = True
    if isinstance(attributes, dict):
        info = RequestInfo(path="", verb=str(attributes.get("verb", "")), is_resource=True,
                           group=str(attributes.get("group", "")), version=str(attributes.get("version", "")),
                           resource=str(attributes.get("resource", "")),
                           subresource=str(attributes.get("subresource", "")),
                           namespace=str(attributes.get("namespace", "")), name=str(attributes.get("name", "")))
        allowed = any(rule.allows(user, info) for rule in authenticator.rules)
    status: Obj = {"allowed": allowed}
    if allowed:
        status["reason"] = "allowed by a stand-in rule"
    return {"kind": kind, "apiVersion": "authorization.k8s.io/v1", "metadata": {"creationTimestamp": None},
            "spec": spec, "status": status}


def audit_event(identity: Identity | None, info: RequestInfo, method: str, uri: str, code: int, source: str,
                user_agent: str, decision: str, reason: str, received: dt.datetime) -> Obj:
    """An audit.k8s.io/v1 Event at stage ResponseComplete, level Metadata."""
    event: Obj = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": str(uuid.uuid4()),
        "stage": "ResponseComplete",
        "requestURI": uri,
        "verb": info.verb if info.is_resource else method.lower(),
        "user": identity.authenticated.to_json() if identity else {},
        "sourceIPs": [source],
        "userAgent": user_agent,
    }
    if identity is not None and identity.impersonated is not None:
        event["impersonatedUser"] = identity.impersonated.to_json()
    if info.is_resource:
        ref: Obj = {"resource": info.resource}
        if info.namespace:
            ref["namespace"] = info.namespace
        if info.name:
            ref["name"] = info.name
        ref["apiGroup"] = info.group
        ref["apiVersion"] = info.version
        if info.subresource:
            ref["subresource"] = info.subresource
        event["objectRef"] = ref
    event["responseStatus"] = {"metadata": {}, "code": code}
    stamp = received.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    event["requestReceivedTimestamp"] = stamp
    event["stageTimestamp"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if decision:
        event["annotations"] = {"authorization.k8s.io/decision": decision, "authorization.k8s.io/reason": reason}
    return event

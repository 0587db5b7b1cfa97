"""The resource types the stand-in serves: one table, read by discovery, routing, storage and OpenAPI."""

from __future__ import annotations

from dataclasses import dataclass

READ_VERBS = ("get", "list", "watch")
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class Subresource:
    """A subresource as discovery lists it (``pods/exec``); ``kind`` is its request or response kind."""

    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = "v1"


@dataclass(frozen=True, slots=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    verbs: tuple[str, ...] = ALL_VERBS
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = ()
    # The OpenAPI definition name, e.g. io.k8s.api.core.v1.Pod.
    definition: str = ""
    # A review (SelfSubjectReview, ...): created, answered, never stored.
    review: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        """The path segment after /api or /apis: ``v1`` or ``apps/v1``."""
        return self.api_version

    @property
    def qualified(self) -> str:
        """``pods`` or ``deployments.apps``: how the API server names a resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """``Pod`` or ``Deployment.apps``: how validation errors name the kind."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def key(self) -> str:
        """The storage key of this type."""
        return f"{self.group}/{self.plural}"

    def subresource(self, name: str) -> Subresource | None:
        return next((s for s in self.subresources if s.name == name), None)


NAMESPACES = ResourceType(
    group="",
    version="v1",
    kind="Namespace",
    plural="namespaces",
    singular="namespace",
    namespaced=False,
    verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    short_names=("ns",),
    definition="io.k8s.api.core.v1.Namespace",
)
PODS = ResourceType(
    group="",
    version="v1",
    kind="Pod",
    plural="pods",
    singular="pod",
    namespaced=True,
    short_names=("po",),
    categories=("all",),
    subresources=(
        Subresource("exec", "PodExecOptions", ("create", "get")),
        Subresource("log", "Pod", ("get",)),
    ),
    definition="io.k8s.api.core.v1.Pod",
)
SECRETS = ResourceType(
    group="",
    version="v1",
    kind="Secret",
    plural="secrets",
    singular="secret",
    namespaced=True,
    definition="io.k8s.api.core.v1.Secret",
)
CONFIGMAPS = ResourceType(
    group="",
    version="v1",
    kind="ConfigMap",
    plural="configmaps",
    singular="configmap",
    namespaced=True,
    short_names=("cm",),
    definition="io.k8s.api.core.v1.ConfigMap",
)
SERVICEACCOUNTS = ResourceType(
    group="",
    version="v1",
    kind="ServiceAccount",
    plural="serviceaccounts",
    singular="serviceaccount",
    namespaced=True,
    short_names=("sa",),
    subresources=(Subresource("token", "TokenRequest", ("create",), group="authentication.k8s.io"),),
    definition="io.k8s.api.core.v1.ServiceAccount",
)
DEPLOYMENTS = ResourceType(
    group="apps",
    version="v1",
    kind="Deployment",
    plural="deployments",
    singular="deployment",
    namespaced=True,
    short_names=("deploy",),
    categories=("all",),
    definition="io.k8s.api.apps.v1.Deployment",
)

SELF_SUBJECT_REVIEWS = ResourceType(
    group="authentication.k8s.io",
    version="v1",
    kind="SelfSubjectReview",
    plural="selfsubjectreviews",
    singular="selfsubjectreview",
    namespaced=False,
    verbs=("create",),
    definition="io.k8s.api.authentication.v1.SelfSubjectReview",
    review=True,
)
SELF_SUBJECT_ACCESS_REVIEWS = ResourceType(
    group="authorization.k8s.io",
    version="v1",
    kind="SelfSubjectAccessReview",
    plural="selfsubjectaccessreviews",
    singular="selfsubjectaccessreview",
    namespaced=False,
    verbs=("create",),
    definition="io.k8s.api.authorization.v1.SelfSubjectAccessReview",
    review=True,
)

RESOURCE_TYPES: tuple[ResourceType, ...] = (NAMESPACES, PODS, SECRETS, CONFIGMAPS, SERVICEACCOUNTS, DEPLOYMENTS,
                                            SELF_SUBJECT_REVIEWS, SELF_SUBJECT_ACCESS_REVIEWS)
GROUP_VERSIONS: tuple[tuple[str, str], ...] = (("", "v1"), ("apps", "v1"), ("authentication.k8s.io", "v1"),
                                               ("authorization.k8s.io", "v1"))


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    """The type served at /api(s)/<group>/<version>/<plural>, or None."""
    return next(
        (t for t in RESOURCE_TYPES if (t.group, t.version, t.plural) == (group, version, plural)),
        None,
    )


def by_kind(api_version: str, kind: str) -> ResourceType | None:
    return next((t for t in RESOURCE_TYPES if (t.api_version, t.kind) == (api_version, kind)), None)


def in_group_version(group: str, version: str) -> tuple[ResourceType, ...]:
    return tuple(t for t in RESOURCE_TYPES if (t.group, t.version) == (group, version))

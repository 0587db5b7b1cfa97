"""The structural schema of the served types: one model behind OpenAPI, patching, apply and field validation.

Each served kind is described down to every field name of the structs kubectl manifests commonly carry
(ObjectMeta, PodSpec, Container, DeploymentSpec, ...), with the real patch strategies, merge keys and list
types of Kubernetes' Go types. Below that, values are free-form objects: accepted as they are,
merged as plain maps, and never reported as unknown fields. The same model renders OpenAPI v2/v3, drives
strategic merge patch and server-side apply, and finds unknown fields for ``fieldValidation``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
CORE = "io.k8s.api.core.v1."
APPS = "io.k8s.api.apps.v1."
AUTHN = "io.k8s.api.authentication.v1."


@dataclass(frozen=True, slots=True)
class Schema:
    """One node: ``type`` is string, integer, boolean, number, object (a struct with ``properties`` when
    ``ref`` names a definition, else free-form), map (``items`` is the value schema) or array."""

    type: str
    description: str = ""
    ref: str = ""
    items: Schema | None = None
    format: str = ""
    patch_strategy: str = ""
    merge_key: str = ""
    list_type: str = ""
    list_keys: tuple[str, ...] = ()

    @property
    def is_free(self) -> bool:
        return self.type == "object" and not self.ref


@dataclass(frozen=True, slots=True)
class Definition:
    name: str
    description: str
    properties: dict[str, Schema] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    gvk: tuple[str, str, str] | None = None  # (group, version, kind)
    patch_strategy: str = ""


def string(description: str = "", fmt: str = "") -> Schema:
    return Schema("string", description, format=fmt)


def integer(description: str = "") -> Schema:
    return Schema("integer", description, format="int32")


def boolean(description: str = "") -> Schema:
    return Schema("boolean", description)


def free(description: str = "") -> Schema:
    return Schema("object", description)


def ref(name: str, description: str = "", patch_strategy: str = "") -> Schema:
    return Schema("object", description, ref=name, patch_strategy=patch_strategy)


def string_map(description: str = "", fmt: str = "") -> Schema:
    return Schema("map", description, items=string(fmt=fmt))


def atomic(items: Schema, description: str = "") -> Schema:
    return Schema("array", description, items=items, list_type="atomic")


def keyed(items: Schema, key: str, description: str = "", *, strategy: str = "merge",
          keys: tuple[str, ...] = ()) -> Schema:
    """A list merged by ``key`` (strategic merge) and keyed by ``keys`` (server-side apply)."""
    return Schema("array", description, items=items, patch_strategy=strategy, merge_key=key, list_type="map",
                  list_keys=keys or (key,))


def string_set(description: str = "") -> Schema:
    return Schema("array", description, items=string(), patch_strategy="merge", list_type="set")


def _type_meta() -> dict[str, Schema]:
    return {
        "apiVersion": string("APIVersion defines the versioned schema of this representation of an object."),
        "kind": string("Kind is a string value representing the REST resource this object represents."),
    }


def _object(kind_meta: str = "") -> dict[str, Schema]:
    return {
        **_type_meta(),
        "metadata": ref(META + "ObjectMeta", kind_meta or "Standard object's metadata."),
    }


DEFINITIONS: dict[str, Definition] = {}


def _define(definition: Definition) -> None:
    DEFINITIONS[definition.name] = definition


_define(Definition(META + "ObjectMeta", "ObjectMeta is metadata that all persisted resources must have.", {
    "name": string("Name must be unique within a namespace."),
    "generateName": string("An optional prefix, used by the server, to generate a unique name."),
    "namespace": string("Namespace defines the space within which each name must be unique."),
    "selfLink": string("Deprecated: selfLink is a legacy read-only field."),
    "uid": string("UID is the unique in time and space value for this object."),
    "resourceVersion": string("An opaque value that represents the internal version of this object."),
    "generation": Schema("integer", "A sequence number representing a specific generation of the desired state.",
                         format="int64"),
    "creationTimestamp": string("CreationTimestamp is a timestamp representing the server time when this "
                                "object was created.", "date-time"),
    "deletionTimestamp": string("DeletionTimestamp is RFC 3339 date and time at which this resource will be "
                                "deleted.", "date-time"),
    "deletionGracePeriodSeconds": Schema("integer", "Seconds allowed for graceful termination.", format="int64"),
    "labels": string_map("Map of string keys and values that can be used to organize and categorize objects."),
    "annotations": string_map("Annotations is an unstructured key value map stored with a resource."),
    "ownerReferences": keyed(free("OwnerReference"), "uid", "List of objects depended by this object."),
    "finalizers": string_set("Must be empty before the object is deleted from the registry."),
    "managedFields": atomic(free("ManagedFieldsEntry"), "ManagedFields maps workflow-id and version to the set "
                            "of fields that are managed by that workflow."),
}))
_define(Definition(META + "ListMeta", "ListMeta describes metadata that synthetic resources must have.", {
    "resourceVersion": string("String that identifies the server's internal version of this object."),
    "continue": string("continue may be set if the user set a limit on the number of items returned."),
    "remainingItemCount": Schema("integer", "The number of subsequent items in the list.", format="int64"),
    "selfLink": string("Deprecated: selfLink is a legacy read-only field."),
}))
_define(Definition(META + "LabelSelector", "A label selector is a label query over a set of resources.", {
    "matchLabels": string_map("matchLabels is a map of {key,value} pairs."),
    "matchExpressions": atomic(free("LabelSelectorRequirement"), "matchExpressions is a list of label selector "
                               "requirements."),
}))

_CONTAINER_FIELDS: dict[str, Schema] = {
    "name": string("Name of the container specified as a DNS_LABEL."),
    "image": string("Container image name."),
    "command": atomic(string(), "Entrypoint array. Not executed within a shell."),
    "args": atomic(string(), "Arguments to the entrypoint."),
    "workingDir": string("Container's working directory."),
    "ports": keyed(free("ContainerPort"), "containerPort", "List of ports to expose from the container.",
                   keys=("containerPort", "protocol")),
    "envFrom": atomic(free("EnvFromSource"), "List of sources to populate environment variables in the "
                      "container."),
    "env": keyed(free("EnvVar"), "name", "List of environment variables to set in the container."),
    "resources": free("Compute Resources required by this container."),
    "resizePolicy": atomic(free("ContainerResizePolicy"), "Resources resize policy for the container."),
    "restartPolicy": string("RestartPolicy defines the restart behavior of individual containers in a pod."),
    "restartPolicyRules": atomic(free("ContainerRestartRule"), "Rules for restarting the container."),
    "volumeMounts": keyed(free("VolumeMount"), "mountPath", "Pod volumes to mount into the container's "
                          "filesystem."),
    "volumeDevices": keyed(free("VolumeDevice"), "devicePath", "volumeDevices is the list of block devices to "
                           "be used by the container."),
    "livenessProbe": free("Periodic probe of container liveness."),
    "readinessProbe": free("Periodic probe of container service readiness."),
    "startupProbe": free("StartupProbe indicates that the Pod has successfully initialized."),
    "lifecycle": free("Actions that the management system should take in response to container lifecycle "
                      "events."),
    "terminationMessagePath": string("Path at which the file to which the container's termination message will "
                                     "be written is mounted."),
    "terminationMessagePolicy": string("Indicate how the termination message should be populated."),
    "imagePullPolicy": string("Image pull policy. One of Always, Never, IfNotPresent."),
    "securityContext": free("SecurityContext defines the security options the container should be run with."),
    "stdin": boolean("Whether this container should allocate a buffer for stdin in the container runtime."),
    "stdinOnce": boolean("Whether the container runtime should close the stdin channel after it has been "
                         "opened by a single attach."),
    "tty": boolean("Whether this container should allocate a TTY for itself."),
}
_define(Definition(CORE + "Container", "A single application container that you want to run within a pod.",
                   _CONTAINER_FIELDS, required=("name",)))
_define(Definition(CORE + "EphemeralContainer", "An EphemeralContainer is a temporary container.", {
    **_CONTAINER_FIELDS,
    "targetContainerName": string("If set, the name of the container from PodSpec that this ephemeral "
                                  "container targets."),
}, required=("name",)))
_define(Definition(CORE + "PodSpec", "PodSpec is a description of a pod.", {
    "volumes": keyed(free("Volume"), "name", "List of volumes that can be mounted by containers belonging to "
                     "the pod.", strategy="merge,retainKeys"),
    "initContainers": keyed(ref(CORE + "Container"), "name", "List of initialization containers belonging to "
                            "the pod."),
    "containers": keyed(ref(CORE + "Container"), "name", "List of containers belonging to the pod."),
    "ephemeralContainers": keyed(ref(CORE + "EphemeralContainer"), "name", "List of ephemeral containers run "
                                 "in this pod."),
    "restartPolicy": string("Restart policy for all containers within the pod."),
    "terminationGracePeriodSeconds": Schema("integer", "Optional duration in seconds the pod needs to terminate "
                                            "gracefully.", format="int64"),
    "activeDeadlineSeconds": Schema("integer", "Optional duration in seconds the pod may be active.",
                                    format="int64"),
    "dnsPolicy": string("Set DNS policy for the pod."),
    "nodeSelector": string_map("NodeSelector is a selector which must be true for the pod to fit on a node."),
    "serviceAccountName": string("ServiceAccountName is the name of the ServiceAccount to use to run this pod."),
    "serviceAccount": string("DeprecatedServiceAccount is a deprecated alias for ServiceAccountName."),
    "automountServiceAccountToken": boolean("Indicates whether a service account token should be automatically "
                                            "mounted."),
    "nodeName": string("NodeName indicates in which node this pod is scheduled."),
    "hostNetwork": boolean("Host networking requested for this pod."),
    "hostPID": boolean("Use the host's pid namespace."),
    "hostIPC": boolean("Use the host's ipc namespace."),
    "shareProcessNamespace": boolean("Share a single process namespace between all of the containers in a pod."),
    "securityContext": free("SecurityContext holds pod-level security attributes and common container "
                            "settings."),
    "imagePullSecrets": keyed(free("LocalObjectReference"), "name", "ImagePullSecrets is an optional list of "
                              "references to secrets."),
    "hostname": string("Specifies the hostname of the Pod."),
    "subdomain": string("If specified, the fully qualified Pod hostname will be \"<hostname>.<subdomain>...\"."),
    "affinity": free("If specified, the pod's scheduling constraints."),
    "schedulerName": string("If specified, the pod will be dispatched by specified scheduler."),
    "tolerations": atomic(free("Toleration"), "If specified, the pod's tolerations."),
    "hostAliases": keyed(free("HostAlias"), "ip", "HostAliases is an optional list of hosts and IPs that will "
                         "be injected into the pod's hosts file."),
    "priorityClassName": string("If specified, indicates the pod's priority."),
    "priority": integer("The priority value."),
    "dnsConfig": free("Specifies the DNS parameters of a pod."),
    "readinessGates": atomic(free("PodReadinessGate"), "If specified, all readiness gates will be evaluated for "
                             "pod readiness."),
    "runtimeClassName": string("RuntimeClassName refers to a RuntimeClass object."),
    "enableServiceLinks": boolean("EnableServiceLinks indicates whether information about services should be "
                                  "injected into pod's environment variables."),
    "preemptionPolicy": string("PreemptionPolicy is the Policy for preempting pods with lower priority."),
    "overhead": free("Overhead represents the resource overhead associated with running a pod."),
    "topologySpreadConstraints": keyed(free("TopologySpreadConstraint"), "topologyKey", "TopologySpreadConstraints "
                                       "describes how a group of pods ought to spread across topology domains.",
                                       keys=("topologyKey", "whenUnsatisfiable")),
    "setHostnameAsFQDN": boolean("If true the pod's hostname will be configured as the pod's FQDN."),
    "os": free("Specifies the OS of the containers in the pod."),
    "hostUsers": boolean("Use the host's user namespace."),
    "schedulingGates": keyed(free("PodSchedulingGate"), "name", "SchedulingGates is an opaque list of values "
                             "that if specified will block scheduling the pod."),
    "resourceClaims": keyed(free("PodResourceClaim"), "name", "ResourceClaims defines which ResourceClaims must "
                            "be allocated and reserved before the Pod is allowed to start.",
                            strategy="merge,retainKeys"),
    "resources": free("Resources is the total amount of CPU and Memory resources required by all containers."),
    "hostnameOverride": string("HostnameOverride specifies an explicit override for the pod's hostname."),
}, required=("containers",)))
_define(Definition(CORE + "PodTemplateSpec", "PodTemplateSpec describes the data a pod should have when "
                   "created from a template.", {
                       "metadata": ref(META + "ObjectMeta", "Standard object's metadata."),
                       "spec": ref(CORE + "PodSpec", "Specification of the desired behavior of the pod."),
                   }))
_define(Definition(CORE + "Pod", "Pod is a collection of containers that can run on a host.", {
    **_object(),
    "spec": ref(CORE + "PodSpec", "Specification of the desired behavior of the pod."),
    "status": free("Most recently observed status of the pod."),
}, gvk=("", "v1", "Pod")))
_define(Definition(CORE + "Secret", "Secret holds secret data of a certain type.", {
    **_object(),
    "data": string_map("Data contains the secret data. Values are base64 encoded.", "byte"),
    "stringData": string_map("stringData allows specifying non-binary secret data in string form. It is "
                             "write-only."),
    "type": string("Used to facilitate programmatic handling of secret data."),
    "immutable": boolean("Immutable, if set to true, ensures that data stored in the Secret cannot be updated."),
}, gvk=("", "v1", "Secret")))
_define(Definition(CORE + "ConfigMap", "ConfigMap holds configuration data for pods to consume.", {
    **_object(),
    "data": string_map("Data contains the configuration data."),
    "binaryData": string_map("BinaryData contains the binary data.", "byte"),
    "immutable": boolean("Immutable, if set to true, ensures that data stored in the ConfigMap cannot be "
                         "updated."),
}, gvk=("", "v1", "ConfigMap")))
_define(Definition(CORE + "ServiceAccount", "ServiceAccount binds together a name, a principal that can be "
                   "authenticated and authorized, and a set of secrets.", {
                       **_object(),
                       "secrets": keyed(free("ObjectReference"), "name", "Secrets is a list of the secrets in "
                                        "the same namespace that pods running using this ServiceAccount are "
                                        "allowed to use."),
                       "imagePullSecrets": atomic(free("LocalObjectReference"), "ImagePullSecrets is a list of "
                                                  "references to secrets in the same namespace."),
                       "automountServiceAccountToken": boolean("AutomountServiceAccountToken indicates whether "
                                                               "pods running as this service account should "
                                                               "have an API token automatically mounted."),
                   }, gvk=("", "v1", "ServiceAccount")))
_define(Definition(CORE + "NamespaceSpec", "NamespaceSpec describes the attributes on a Namespace.", {
    "finalizers": atomic(string(), "Finalizers is an opaque list of values that must be empty to permanently "
                         "remove object from storage."),
}))
_define(Definition(CORE + "NamespaceStatus", "NamespaceStatus is information about the current status of a "
                   "Namespace.", {
                       "phase": string("Phase is the current lifecycle phase of the namespace."),
                       "conditions": keyed(free("NamespaceCondition"), "type", "Represents the latest available "
                                           "observations of a namespace's current state."),
                   }))
_define(Definition(CORE + "Namespace", "Namespace provides a scope for Names.", {
    **_object(),
    "spec": ref(CORE + "NamespaceSpec", "Spec defines the behavior of the Namespace."),
    "status": ref(CORE + "NamespaceStatus", "Status describes the current status of a Namespace."),
}, gvk=("", "v1", "Namespace")))
_define(Definition(APPS + "DeploymentSpec", "DeploymentSpec is the specification of the desired behavior of the "
                   "Deployment.", {
                       "replicas": integer("Number of desired pods."),
                       "selector": ref(META + "LabelSelector", "Label selector for pods."),
                       "template": ref(CORE + "PodTemplateSpec", "Template describes the pods that will be "
                                       "created."),
                       "strategy": Schema("object", "The deployment strategy to use to replace existing pods with "
                                          "new ones.", patch_strategy="retainKeys"),
                       "minReadySeconds": integer("Minimum number of seconds for which a newly created pod should "
                                                  "be ready."),
                       "revisionHistoryLimit": integer("The number of old ReplicaSets to retain."),
                       "paused": boolean("Indicates that the deployment is paused."),
                       "progressDeadlineSeconds": integer("The maximum time in seconds for a deployment to make "
                                                          "progress before it is considered to be failed."),
                   }, required=("selector", "template")))
_define(Definition(APPS + "Deployment", "Deployment enables declarative updates for Pods and ReplicaSets.", {
    **_object(),
    "spec": ref(APPS + "DeploymentSpec", "Specification of the desired behavior of the Deployment."),
    "status": free("Most recently observed status of the Deployment."),
}, gvk=("apps", "v1", "Deployment")))
_define(Definition(AUTHN + "TokenRequest", "TokenRequest requests a token for a given service account.", {
    **_object(),
    "spec": free("Spec holds information about the request being evaluated"),
    "status": free("Status is filled in by the server and indicates whether the token can be authenticated."),
}, gvk=("authentication.k8s.io", "v1", "TokenRequest")))

_define(Definition("io.k8s.api.authentication.v1.SelfSubjectReview", "SelfSubjectReview contains the user "
                   "information that the kube-apiserver has about the user making this request.", {
                       **_object(),
                       "status": free("Status is filled in by the server with the user attributes."),
                   }, gvk=("authentication.k8s.io", "v1", "SelfSubjectReview")))
_define(Definition("io.k8s.api.authorization.v1.SelfSubjectAccessReview", "SelfSubjectAccessReview checks whether "
                   "or the current user can perform an action.", {
                       **_object(),
                       "spec": free("Spec holds information about the request being evaluated."),
                       "status": free("Status is filled in by the server and indicates whether the request is "
                                      "allowed or not"),
                   }, required=("spec",), gvk=("authorization.k8s.io", "v1", "SelfSubjectAccessReview")))

for _kind, _prefix, _group in (("Pod", CORE, ""), ("Secret", CORE, ""), ("ConfigMap", CORE, ""),
                               ("ServiceAccount", CORE, ""), ("Namespace", CORE, ""), ("Deployment", APPS, "apps")):
    _define(Definition(f"{_prefix}{_kind}List", f"{_kind}List is a list of {_kind} objects.", {
        **_type_meta(),
        "metadata": ref(META + "ListMeta", "Standard list metadata."),
        "items": atomic(ref(_prefix + _kind), f"List of {_kind} objects."),
    }, required=("items",), gvk=(_group, "v1", f"{_kind}List")))

_define(Definition(META + "Status", "Status is a return value for calls that don't return other objects.", {
    **_type_meta(),
    "metadata": ref(META + "ListMeta", "Standard list metadata."),
    "status": string("Status of the operation. One of: \"Success\" or \"Failure\"."),
    "message": string("A human-readable description of the status of this operation."),
    "reason": string("A machine-readable description of why this operation is in the \"Failure\" status."),
    "details": free("Extended data associated with the reason."),
    "code": integer("Suggested HTTP return code for this status, 0 if not set."),
}, gvk=("", "v1", "Status")))
_define(Definition(META + "WatchEvent", "Event represents a single event to a watched resource.", {
    "type": string("The type of the event: ADDED, MODIFIED, DELETED, BOOKMARK or ERROR."),
    "object": free("Object is the object of the event."),
}, required=("type", "object")))


def definition_for(api_version: str, kind: str) -> Definition | None:
    group, _, version = api_version.rpartition("/")
    return next((d for d in DEFINITIONS.values() if d.gvk == (group, version, kind)), None)


def properties(schema: Schema | Definition | None) -> dict[str, Schema] | None:
    """The fields of a struct schema; None for free-form, scalar and unknown schemas."""
    if isinstance(schema, Definition):
        return schema.properties
    if schema is not None and schema.ref:
        return DEFINITIONS[schema.ref].properties
    return None


def child(schema: Schema | Definition | None, key: str) -> Schema | None:
    """The schema of ``key`` inside a struct; maps give their value schema; None when unknown/free."""
    if isinstance(schema, Schema) and schema.type == "map":
        return schema.items
    props = properties(schema)
    if props is None:
        return None
    return props.get(key)


def element(schema: Schema | None) -> Schema | None:
    return schema.items if schema is not None and schema.type == "array" else None


def unknown_fields(schema: Schema | Definition | None, value: object, path: str = "") -> list[str]:
    """Dotted paths of fields the schema does not declare (``spec.containers[0].foo``), as strict decoding
    names them. Free-form subtrees are not inspected."""
    found: list[str] = []
    if isinstance(value, dict):
        if isinstance(schema, Schema) and schema.type == "map":
            for key, item in value.items():
                found += unknown_fields(schema.items, item, f"{path}.{key}" if path else key)
            return found
        props = properties(schema)
        if props is None:
            return found
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in props:
                found.append(where)
            else:
                found += unknown_fields(props[key], item, where)
    elif isinstance(value, list) and isinstance(schema, Schema) and schema.type == "array":
        for index, item in enumerate(value):
            found += unknown_fields(schema.items, item, f"{path}[{index}]")
    return found


def prune(obj: object, path: str) -> None:
    """Drop the field at a path :func:`unknown_fields` reported."""
    steps = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    current = obj
    for step in steps[:-1]:
        if step.startswith("["):
            index = int(step[1:-1])
            current = current[index] if isinstance(current, list) and index < len(current) else None
        else:
            current = current.get(step) if isinstance(current, dict) else None
    if isinstance(current, dict) and steps:
        current.pop(steps[-1], None)

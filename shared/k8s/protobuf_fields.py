"""Protobuf field numbers of the Kubernetes API types Airlock decodes (k8s.io/api generated.proto).

Data, not code: for each message, field number -> (JSON name, type[, REPEATED]); a type is a scalar marker
or another message's name (``core.`` = k8s.io.api.core.v1, ``meta.`` = k8s.io.apimachinery.pkg.apis.meta.v1).
Field numbers never change once published, so this table stays valid as Kubernetes adds fields; a field
added after it was written is not here, and a request that uses one is refused (415), never half-read.
``CORE`` lists every message reachable from Pod, Secret, ConfigMap, Namespace and ServiceAccount as of
Kubernetes 1.15; ``LATER`` adds fields and types from later releases and the apps/v1, authentication.k8s.io/v1
and authorization.k8s.io/v1 messages kubectl sends (``authn.``, ``authz.``).
"""

from __future__ import annotations

S, B, BOOL, INT, F = "string", "bytes", "bool", "int", "double"
MAP, REPEATED = "map", "repeated"
Field = tuple[str, ...]

CORE: dict[str, dict[int, Field]] = {
    "core.AWSElasticBlockStoreVolumeSource": {
        1: ("volumeID", S), 2: ("fsType", S), 3: ("partition", INT), 4: ("readOnly", BOOL),
    },
    "core.Affinity": {
        1: ("nodeAffinity", "core.NodeAffinity"), 2: ("podAffinity", "core.PodAffinity"),
        3: ("podAntiAffinity", "core.PodAntiAffinity"),
    },
    "core.AzureDiskVolumeSource": {
        1: ("diskName", S), 2: ("diskURI", S), 3: ("cachingMode", S), 4: ("fsType", S), 5: ("readOnly", BOOL),
        6: ("kind", S),
    },
    "core.AzureFileVolumeSource": {1: ("secretName", S), 2: ("shareName", S), 3: ("readOnly", BOOL)},
    "core.CSIVolumeSource": {
        1: ("driver", S), 2: ("readOnly", BOOL), 3: ("fsType", S), 4: ("volumeAttributes", MAP, S),
        5: ("nodePublishSecretRef", "core.LocalObjectReference"),
    },
    "core.Capabilities": {1: ("add", S, REPEATED), 2: ("drop", S, REPEATED)},
    "core.CephFSVolumeSource": {
        1: ("monitors", S, REPEATED), 2: ("path", S), 3: ("user", S), 4: ("secretFile", S),
        5: ("secretRef", "core.LocalObjectReference"), 6: ("readOnly", BOOL),
    },
    "core.CinderVolumeSource": {
        1: ("volumeID", S), 2: ("fsType", S), 3: ("readOnly", BOOL), 4: ("secretRef", "core.LocalObjectReference"),
    },
    "core.ConfigMap": {1: ("metadata", "meta.ObjectMeta"), 2: ("data", MAP, S), 3: ("binaryData", MAP, B)},
    "core.ConfigMapEnvSource": {1: ("localObjectReference", "core.LocalObjectReference"), 2: ("optional", BOOL)},
    "core.ConfigMapKeySelector": {
        1: ("localObjectReference", "core.LocalObjectReference"), 2: ("key", S), 3: ("optional", BOOL),
    },
    "core.ConfigMapProjection": {
        1: ("localObjectReference", "core.LocalObjectReference"), 2: ("items", "core.KeyToPath", REPEATED),
        4: ("optional", BOOL),
    },
    "core.ConfigMapVolumeSource": {
        1: ("localObjectReference", "core.LocalObjectReference"), 2: ("items", "core.KeyToPath", REPEATED),
        3: ("defaultMode", INT), 4: ("optional", BOOL),
    },
    "core.Container": {
        1: ("name", S), 2: ("image", S), 3: ("command", S, REPEATED), 4: ("args", S, REPEATED), 5: ("workingDir", S),
        6: ("ports", "core.ContainerPort", REPEATED), 7: ("env", "core.EnvVar", REPEATED),
        8: ("resources", "core.ResourceRequirements"), 9: ("volumeMounts", "core.VolumeMount", REPEATED),
        10: ("livenessProbe", "core.Probe"), 11: ("readinessProbe", "core.Probe"),
        12: ("lifecycle", "core.Lifecycle"), 13: ("terminationMessagePath", S), 14: ("imagePullPolicy", S),
        15: ("securityContext", "core.SecurityContext"), 16: ("stdin", BOOL), 17: ("stdinOnce", BOOL),
        18: ("tty", BOOL), 19: ("envFrom", "core.EnvFromSource", REPEATED), 20: ("terminationMessagePolicy", S),
        21: ("volumeDevices", "core.VolumeDevice", REPEATED),
    },
    "core.ContainerPort": {
        1: ("name", S), 2: ("hostPort", INT), 3: ("containerPort", INT), 4: ("protocol", S), 5: ("hostIP", S),
    },
    "core.ContainerState": {
        1: ("waiting", "core.ContainerStateWaiting"), 2: ("running", "core.ContainerStateRunning"),
        3: ("terminated", "core.ContainerStateTerminated"),
    },
    "core.ContainerStateRunning": {1: ("startedAt", "meta.Time")},
    "core.ContainerStateTerminated": {
        1: ("exitCode", INT), 2: ("signal", INT), 3: ("reason", S), 4: ("message", S), 5: ("startedAt", "meta.Time"),
        6: ("finishedAt", "meta.Time"), 7: ("containerID", S),
    },
    "core.ContainerStateWaiting": {1: ("reason", S), 2: ("message", S)},
    "core.ContainerStatus": {
        1: ("name", S), 2: ("state", "core.ContainerState"), 3: ("lastState", "core.ContainerState"),
        4: ("ready", BOOL), 5: ("restartCount", INT), 6: ("image", S), 7: ("imageID", S), 8: ("containerID", S),
    },
    "core.DownwardAPIProjection": {1: ("items", "core.DownwardAPIVolumeFile", REPEATED)},
    "core.DownwardAPIVolumeFile": {
        1: ("path", S), 2: ("fieldRef", "core.ObjectFieldSelector"),
        3: ("resourceFieldRef", "core.ResourceFieldSelector"), 4: ("mode", INT),
    },
    "core.DownwardAPIVolumeSource": {1: ("items", "core.DownwardAPIVolumeFile", REPEATED), 2: ("defaultMode", INT)},
    "core.EmptyDirVolumeSource": {1: ("medium", S), 2: ("sizeLimit", "resource.Quantity")},
    "core.EnvFromSource": {
        1: ("prefix", S), 2: ("configMapRef", "core.ConfigMapEnvSource"), 3: ("secretRef", "core.SecretEnvSource"),
    },
    "core.EnvVar": {1: ("name", S), 2: ("value", S), 3: ("valueFrom", "core.EnvVarSource")},
    "core.EnvVarSource": {
        1: ("fieldRef", "core.ObjectFieldSelector"), 2: ("resourceFieldRef", "core.ResourceFieldSelector"),
        3: ("configMapKeyRef", "core.ConfigMapKeySelector"), 4: ("secretKeyRef", "core.SecretKeySelector"),
    },
    "core.ExecAction": {1: ("command", S, REPEATED)},
    "core.FCVolumeSource": {
        1: ("targetWWNs", S, REPEATED), 2: ("lun", INT), 3: ("fsType", S), 4: ("readOnly", BOOL),
        5: ("wwids", S, REPEATED),
    },
    "core.FlexVolumeSource": {
        1: ("driver", S), 2: ("fsType", S), 3: ("secretRef", "core.LocalObjectReference"), 4: ("readOnly", BOOL),
        5: ("options", MAP, S),
    },
    "core.FlockerVolumeSource": {1: ("datasetName", S), 2: ("datasetUUID", S)},
    "core.GCEPersistentDiskVolumeSource": {
        1: ("pdName", S), 2: ("fsType", S), 3: ("partition", INT), 4: ("readOnly", BOOL),
    },
    "core.GitRepoVolumeSource": {1: ("repository", S), 2: ("revision", S), 3: ("directory", S)},
    "core.GlusterfsVolumeSource": {1: ("endpoints", S), 2: ("path", S), 3: ("readOnly", BOOL)},
    "core.HTTPGetAction": {
        1: ("path", S), 2: ("port", "intstr.IntOrString"), 3: ("host", S), 4: ("scheme", S),
        5: ("httpHeaders", "core.HTTPHeader", REPEATED),
    },
    "core.HTTPHeader": {1: ("name", S), 2: ("value", S)},
    "core.Handler": {
        1: ("exec", "core.ExecAction"), 2: ("httpGet", "core.HTTPGetAction"),
        3: ("tcpSocket", "core.TCPSocketAction"),
    },
    "core.HostAlias": {1: ("ip", S), 2: ("hostnames", S, REPEATED)},
    "core.HostPathVolumeSource": {1: ("path", S), 2: ("type", S)},
    "core.ISCSIVolumeSource": {
        1: ("targetPortal", S), 2: ("iqn", S), 3: ("lun", INT), 4: ("iscsiInterface", S), 5: ("fsType", S),
        6: ("readOnly", BOOL), 7: ("portals", S, REPEATED), 8: ("chapAuthDiscovery", BOOL),
        10: ("secretRef", "core.LocalObjectReference"), 11: ("chapAuthSession", BOOL), 12: ("initiatorName", S),
    },
    "core.KeyToPath": {1: ("key", S), 2: ("path", S), 3: ("mode", INT)},
    "core.Lifecycle": {1: ("postStart", "core.Handler"), 2: ("preStop", "core.Handler")},
    "core.LocalObjectReference": {1: ("name", S)},
    "core.NFSVolumeSource": {1: ("server", S), 2: ("path", S), 3: ("readOnly", BOOL)},
    "core.Namespace": {
        1: ("metadata", "meta.ObjectMeta"), 2: ("spec", "core.NamespaceSpec"), 3: ("status", "core.NamespaceStatus"),
    },
    "core.NamespaceSpec": {1: ("finalizers", S, REPEATED)},
    "core.NamespaceStatus": {1: ("phase", S)},
    "core.NodeAffinity": {
        1: ("requiredDuringSchedulingIgnoredDuringExecution", "core.NodeSelector"),
        2: ("preferredDuringSchedulingIgnoredDuringExecution", "core.PreferredSchedulingTerm", REPEATED),
    },
    "core.NodeSelector": {1: ("nodeSelectorTerms", "core.NodeSelectorTerm", REPEATED)},
    "core.NodeSelectorRequirement": {1: ("key", S), 2: ("operator", S), 3: ("values", S, REPEATED)},
    "core.NodeSelectorTerm": {
        1: ("matchExpressions", "core.NodeSelectorRequirement", REPEATED),
        2: ("matchFields", "core.NodeSelectorRequirement", REPEATED),
    },
    "core.ObjectFieldSelector": {1: ("apiVersion", S), 2: ("fieldPath", S)},
    "core.ObjectReference": {
        1: ("kind", S), 2: ("namespace", S), 3: ("name", S), 4: ("uid", S), 5: ("apiVersion", S),
        6: ("resourceVersion", S), 7: ("fieldPath", S),
    },
    "core.PersistentVolumeClaimVolumeSource": {1: ("claimName", S), 2: ("readOnly", BOOL)},
    "core.PhotonPersistentDiskVolumeSource": {1: ("pdID", S), 2: ("fsType", S)},
    "core.Pod": {1: ("metadata", "meta.ObjectMeta"), 2: ("spec", "core.PodSpec"), 3: ("status", "core.PodStatus")},
    "core.PodAffinity": {
        1: ("requiredDuringSchedulingIgnoredDuringExecution", "core.PodAffinityTerm", REPEATED),
        2: ("preferredDuringSchedulingIgnoredDuringExecution", "core.WeightedPodAffinityTerm", REPEATED),
    },
    "core.PodAffinityTerm": {
        1: ("labelSelector", "meta.LabelSelector"), 2: ("namespaces", S, REPEATED), 3: ("topologyKey", S),
    },
    "core.PodAntiAffinity": {
        1: ("requiredDuringSchedulingIgnoredDuringExecution", "core.PodAffinityTerm", REPEATED),
        2: ("preferredDuringSchedulingIgnoredDuringExecution", "core.WeightedPodAffinityTerm", REPEATED),
    },
    "core.PodCondition": {
        1: ("type", S), 2: ("status", S), 3: ("lastProbeTime", "meta.Time"), 4: ("lastTransitionTime", "meta.Time"),
        5: ("reason", S), 6: ("message", S),
    },
    "core.PodDNSConfig": {
        1: ("nameservers", S, REPEATED), 2: ("searches", S, REPEATED),
        3: ("options", "core.PodDNSConfigOption", REPEATED),
    },
    "core.PodDNSConfigOption": {1: ("name", S), 2: ("value", S)},
    "core.PodReadinessGate": {1: ("conditionType", S)},
    "core.PodSecurityContext": {
        1: ("seLinuxOptions", "core.SELinuxOptions"), 2: ("runAsUser", INT), 3: ("runAsNonRoot", BOOL),
        4: ("supplementalGroups", INT, REPEATED), 5: ("fsGroup", INT), 6: ("runAsGroup", INT),
        7: ("sysctls", "core.Sysctl", REPEATED),
    },
    "core.PodSpec": {
        1: ("volumes", "core.Volume", REPEATED), 2: ("containers", "core.Container", REPEATED),
        3: ("restartPolicy", S), 4: ("terminationGracePeriodSeconds", INT), 5: ("activeDeadlineSeconds", INT),
        6: ("dnsPolicy", S), 7: ("nodeSelector", MAP, S), 8: ("serviceAccountName", S), 9: ("serviceAccount", S),
        10: ("nodeName", S), 11: ("hostNetwork", BOOL), 12: ("hostPID", BOOL), 13: ("hostIPC", BOOL),
        14: ("securityContext", "core.PodSecurityContext"),
        15: ("imagePullSecrets", "core.LocalObjectReference", REPEATED), 16: ("hostname", S), 17: ("subdomain", S),
        18: ("affinity", "core.Affinity"), 19: ("schedulerName", S),
        20: ("initContainers", "core.Container", REPEATED), 21: ("automountServiceAccountToken", BOOL),
        22: ("tolerations", "core.Toleration", REPEATED), 23: ("hostAliases", "core.HostAlias", REPEATED),
        24: ("priorityClassName", S), 25: ("priority", INT), 26: ("dnsConfig", "core.PodDNSConfig"),
        27: ("shareProcessNamespace", BOOL), 28: ("readinessGates", "core.PodReadinessGate", REPEATED),
        29: ("runtimeClassName", S), 30: ("enableServiceLinks", BOOL),
    },
    "core.PodStatus": {
        1: ("phase", S), 2: ("conditions", "core.PodCondition", REPEATED), 3: ("message", S), 4: ("reason", S),
        5: ("hostIP", S), 6: ("podIP", S), 7: ("startTime", "meta.Time"),
        8: ("containerStatuses", "core.ContainerStatus", REPEATED), 9: ("qosClass", S),
        10: ("initContainerStatuses", "core.ContainerStatus", REPEATED), 11: ("nominatedNodeName", S),
    },
    "core.PodTemplateSpec": {1: ("metadata", "meta.ObjectMeta"), 2: ("spec", "core.PodSpec")},
    "core.PortworxVolumeSource": {1: ("volumeID", S), 2: ("fsType", S), 3: ("readOnly", BOOL)},
    "core.PreferredSchedulingTerm": {1: ("weight", INT), 2: ("preference", "core.NodeSelectorTerm")},
    "core.Probe": {
        1: ("handler", "core.Handler"), 2: ("initialDelaySeconds", INT), 3: ("timeoutSeconds", INT),
        4: ("periodSeconds", INT), 5: ("successThreshold", INT), 6: ("failureThreshold", INT),
    },
    "core.ProjectedVolumeSource": {1: ("sources", "core.VolumeProjection", REPEATED), 2: ("defaultMode", INT)},
    "core.QuobyteVolumeSource": {
        1: ("registry", S), 2: ("volume", S), 3: ("readOnly", BOOL), 4: ("user", S), 5: ("group", S),
        6: ("tenant", S),
    },
    "core.RBDVolumeSource": {
        1: ("monitors", S, REPEATED), 2: ("image", S), 3: ("fsType", S), 4: ("pool", S), 5: ("user", S),
        6: ("keyring", S), 7: ("secretRef", "core.LocalObjectReference"), 8: ("readOnly", BOOL),
    },
    "core.ResourceFieldSelector": {1: ("containerName", S), 2: ("resource", S), 3: ("divisor", "resource.Quantity")},
    "core.ResourceRequirements": {1: ("limits", MAP, "resource.Quantity"), 2: ("requests", MAP, "resource.Quantity")},
    "core.SELinuxOptions": {1: ("user", S), 2: ("role", S), 3: ("type", S), 4: ("level", S)},
    "core.ScaleIOVolumeSource": {
        1: ("gateway", S), 2: ("system", S), 3: ("secretRef", "core.LocalObjectReference"), 4: ("sslEnabled", BOOL),
        5: ("protectionDomain", S), 6: ("storagePool", S), 7: ("storageMode", S), 8: ("volumeName", S),
        9: ("fsType", S), 10: ("readOnly", BOOL),
    },
    "core.Secret": {1: ("metadata", "meta.ObjectMeta"), 2: ("data", MAP, B), 3: ("type", S), 4: ("stringData", MAP, S)},
    "core.SecretEnvSource": {1: ("localObjectReference", "core.LocalObjectReference"), 2: ("optional", BOOL)},
    "core.SecretKeySelector": {
        1: ("localObjectReference", "core.LocalObjectReference"), 2: ("key", S), 3: ("optional", BOOL),
    },
    "core.SecretProjection": {
        1: ("localObjectReference", "core.LocalObjectReference"), 2: ("items", "core.KeyToPath", REPEATED),
        4: ("optional", BOOL),
    },
    "core.SecretVolumeSource": {
        1: ("secretName", S), 2: ("items", "core.KeyToPath", REPEATED), 3: ("defaultMode", INT), 4: ("optional", BOOL),
    },
    "core.SecurityContext": {
        1: ("capabilities", "core.Capabilities"), 2: ("privileged", BOOL),
        3: ("seLinuxOptions", "core.SELinuxOptions"), 4: ("runAsUser", INT), 5: ("runAsNonRoot", BOOL),
        6: ("readOnlyRootFilesystem", BOOL), 7: ("allowPrivilegeEscalation", BOOL), 8: ("runAsGroup", INT),
        9: ("procMount", S),
    },
    "core.ServiceAccount": {
        1: ("metadata", "meta.ObjectMeta"), 2: ("secrets", "core.ObjectReference", REPEATED),
        3: ("imagePullSecrets", "core.LocalObjectReference", REPEATED), 4: ("automountServiceAccountToken", BOOL),
    },
    "core.ServiceAccountTokenProjection": {1: ("audience", S), 2: ("expirationSeconds", INT), 3: ("path", S)},
    "core.StorageOSVolumeSource": {
        1: ("volumeName", S), 2: ("volumeNamespace", S), 3: ("fsType", S), 4: ("readOnly", BOOL),
        5: ("secretRef", "core.LocalObjectReference"),
    },
    "core.Sysctl": {1: ("name", S), 2: ("value", S)},
    "core.TCPSocketAction": {1: ("port", "intstr.IntOrString"), 2: ("host", S)},
    "core.Toleration": {
        1: ("key", S), 2: ("operator", S), 3: ("value", S), 4: ("effect", S), 5: ("tolerationSeconds", INT),
    },
    "core.Volume": {1: ("name", S), 2: ("volumeSource", "core.VolumeSource")},
    "core.VolumeDevice": {1: ("name", S), 2: ("devicePath", S)},
    "core.VolumeMount": {
        1: ("name", S), 2: ("readOnly", BOOL), 3: ("mountPath", S), 4: ("subPath", S), 5: ("mountPropagation", S),
        6: ("subPathExpr", S),
    },
    "core.VolumeProjection": {
        1: ("secret", "core.SecretProjection"), 2: ("downwardAPI", "core.DownwardAPIProjection"),
        3: ("configMap", "core.ConfigMapProjection"),
        4: ("serviceAccountToken", "core.ServiceAccountTokenProjection"),
    },
    "core.VolumeSource": {
        1: ("hostPath", "core.HostPathVolumeSource"), 2: ("emptyDir", "core.EmptyDirVolumeSource"),
        3: ("gcePersistentDisk", "core.GCEPersistentDiskVolumeSource"),
        4: ("awsElasticBlockStore", "core.AWSElasticBlockStoreVolumeSource"),
        5: ("gitRepo", "core.GitRepoVolumeSource"), 6: ("secret", "core.SecretVolumeSource"),
        7: ("nfs", "core.NFSVolumeSource"), 8: ("iscsi", "core.ISCSIVolumeSource"),
        9: ("glusterfs", "core.GlusterfsVolumeSource"),
        10: ("persistentVolumeClaim", "core.PersistentVolumeClaimVolumeSource"), 11: ("rbd", "core.RBDVolumeSource"),
        12: ("flexVolume", "core.FlexVolumeSource"), 13: ("cinder", "core.CinderVolumeSource"),
        14: ("cephfs", "core.CephFSVolumeSource"), 15: ("flocker", "core.FlockerVolumeSource"),
        16: ("downwardAPI", "core.DownwardAPIVolumeSource"), 17: ("fc", "core.FCVolumeSource"),
        18: ("azureFile", "core.AzureFileVolumeSource"), 19: ("configMap", "core.ConfigMapVolumeSource"),
        20: ("vsphereVolume", "core.VsphereVirtualDiskVolumeSource"), 21: ("quobyte", "core.QuobyteVolumeSource"),
        22: ("azureDisk", "core.AzureDiskVolumeSource"),
        23: ("photonPersistentDisk", "core.PhotonPersistentDiskVolumeSource"),
        24: ("portworxVolume", "core.PortworxVolumeSource"), 25: ("scaleIO", "core.ScaleIOVolumeSource"),
        26: ("projected", "core.ProjectedVolumeSource"), 27: ("storageos", "core.StorageOSVolumeSource"),
        28: ("csi", "core.CSIVolumeSource"),
    },
    "core.VsphereVirtualDiskVolumeSource": {
        1: ("volumePath", S), 2: ("fsType", S), 3: ("storagePolicyName", S), 4: ("storagePolicyID", S),
    },
    "core.WeightedPodAffinityTerm": {1: ("weight", INT), 2: ("podAffinityTerm", "core.PodAffinityTerm")},
    "meta.Initializer": {1: ("name", S)},
    "meta.Initializers": {1: ("pending", "meta.Initializer", REPEATED), 2: ("result", "meta.Status")},
    "meta.LabelSelector": {
        1: ("matchLabels", MAP, S), 2: ("matchExpressions", "meta.LabelSelectorRequirement", REPEATED),
    },
    "meta.LabelSelectorRequirement": {1: ("key", S), 2: ("operator", S), 3: ("values", S, REPEATED)},
    "meta.ListMeta": {1: ("selfLink", S), 2: ("resourceVersion", S), 3: ("continue", S)},
    "meta.DeleteOptions": {1: ("gracePeriodSeconds", INT), 2: ("preconditions", "meta.Preconditions"),
                           3: ("orphanDependents", BOOL), 4: ("propagationPolicy", S), 5: ("dryRun", S, REPEATED)},
    "meta.Preconditions": {1: ("uid", S), 2: ("resourceVersion", S)},
    "meta.ManagedFieldsEntry": {
        1: ("manager", S), 2: ("operation", S), 3: ("apiVersion", S), 4: ("time", "meta.Time"),
        5: ("fields", "meta.Fields"),
    },
    "meta.ObjectMeta": {
        1: ("name", S), 2: ("generateName", S), 3: ("namespace", S), 4: ("selfLink", S), 5: ("uid", S),
        6: ("resourceVersion", S), 7: ("generation", INT), 8: ("creationTimestamp", "meta.Time"),
        9: ("deletionTimestamp", "meta.Time"), 10: ("deletionGracePeriodSeconds", INT), 11: ("labels", MAP, S),
        12: ("annotations", MAP, S), 13: ("ownerReferences", "meta.OwnerReference", REPEATED),
        14: ("finalizers", S, REPEATED), 15: ("clusterName", S), 16: ("initializers", "meta.Initializers"),
        17: ("managedFields", "meta.ManagedFieldsEntry", REPEATED),
    },
    "meta.OwnerReference": {
        1: ("kind", S), 3: ("name", S), 4: ("uid", S), 5: ("apiVersion", S), 6: ("controller", BOOL),
        7: ("blockOwnerDeletion", BOOL),
    },
    "meta.Status": {
        1: ("metadata", "meta.ListMeta"), 2: ("status", S), 3: ("message", S), 4: ("reason", S),
        5: ("details", "meta.StatusDetails"), 6: ("code", INT),
    },
    "meta.StatusCause": {1: ("reason", S), 2: ("message", S), 3: ("field", S)},
    "meta.StatusDetails": {
        1: ("name", S), 2: ("group", S), 3: ("kind", S), 4: ("causes", "meta.StatusCause", REPEATED),
        5: ("retryAfterSeconds", INT), 6: ("uid", S),
    },
    "runtime.TypeMeta": {1: ("apiVersion", S), 2: ("kind", S)},
    "runtime.Unknown": {
        1: ("typeMeta", "runtime.TypeMeta"), 2: ("raw", B), 3: ("contentEncoding", S), 4: ("contentType", S),
    },
}

LATER: dict[str, dict[int, Field]] = {
    "core.Container": {22: ("startupProbe", "core.Probe"), 23: ("resizePolicy", "core.ContainerResizePolicy", REPEATED),
                       24: ("restartPolicy", S)},
    "core.ContainerResizePolicy": {1: ("resourceName", S), 2: ("restartPolicy", S)},
    "core.Secret": {5: ("immutable", BOOL)},
    "core.ConfigMap": {4: ("immutable", BOOL)},
    "meta.DeleteOptions": {1: ("gracePeriodSeconds", INT), 2: ("preconditions", "meta.Preconditions"),
                           3: ("orphanDependents", BOOL), 4: ("propagationPolicy", S), 5: ("dryRun", S, REPEATED)},
    "meta.Preconditions": {1: ("uid", S), 2: ("resourceVersion", S)},
    "meta.ManagedFieldsEntry": {6: ("fieldsType", S), 7: ("fieldsV1", "meta.FieldsV1"), 8: ("subresource", S)},
    "apps.Deployment": {1: ("metadata", "meta.ObjectMeta"), 2: ("spec", "apps.DeploymentSpec"),
                        3: ("status", "apps.DeploymentStatus")},
    "apps.DeploymentSpec": {
        1: ("replicas", INT), 2: ("selector", "meta.LabelSelector"), 3: ("template", "core.PodTemplateSpec"),
        4: ("strategy", "apps.DeploymentStrategy"), 5: ("minReadySeconds", INT), 6: ("revisionHistoryLimit", INT),
        7: ("paused", BOOL), 9: ("progressDeadlineSeconds", INT), 10: ("podReplacementPolicy", S),
    },
    "apps.DeploymentStrategy": {1: ("type", S), 2: ("rollingUpdate", "apps.RollingUpdateDeployment")},
    "apps.RollingUpdateDeployment": {1: ("maxUnavailable", "intstr.IntOrString"),
                                     2: ("maxSurge", "intstr.IntOrString")},
    "apps.DeploymentStatus": {
        1: ("observedGeneration", INT), 2: ("replicas", INT), 3: ("updatedReplicas", INT),
        4: ("availableReplicas", INT), 5: ("unavailableReplicas", INT),
        6: ("conditions", "apps.DeploymentCondition", REPEATED),
        7: ("readyReplicas", INT), 8: ("collisionCount", INT), 9: ("terminatingReplicas", INT),
    },
    "apps.DeploymentCondition": {1: ("type", S), 2: ("status", S), 4: ("reason", S), 5: ("message", S),
                                 6: ("lastUpdateTime", "meta.Time"), 7: ("lastTransitionTime", "meta.Time")},
    "authn.TokenRequest": {1: ("metadata", "meta.ObjectMeta"), 2: ("spec", "authn.TokenRequestSpec"),
                           3: ("status", "authn.TokenRequestStatus")},
    "authn.TokenRequestSpec": {1: ("audiences", S, REPEATED), 3: ("boundObjectRef", "authn.BoundObjectReference"),
                               4: ("expirationSeconds", INT)},
    "authn.BoundObjectReference": {1: ("kind", S), 2: ("apiVersion", S), 3: ("name", S), 4: ("uid", S)},
    "authn.TokenRequestStatus": {1: ("token", S), 2: ("expirationTimestamp", "meta.Time")},
    "authn.SelfSubjectReview": {1: ("metadata", "meta.ObjectMeta"), 2: ("status", "authn.SelfSubjectReviewStatus")},
    "authn.SelfSubjectReviewStatus": {1: ("userInfo", "authn.UserInfo")},
    "authn.UserInfo": {1: ("username", S), 2: ("uid", S), 3: ("groups", S, REPEATED),
                       4: ("extra", MAP, "authn.ExtraValue")},
    "authn.ExtraValue": {1: ("items", S, REPEATED)},
    "authz.SelfSubjectAccessReview": {1: ("metadata", "meta.ObjectMeta"),
                                      2: ("spec", "authz.SelfSubjectAccessReviewSpec"),
                                      3: ("status", "authz.SubjectAccessReviewStatus")},
    "authz.SelfSubjectAccessReviewSpec": {1: ("resourceAttributes", "authz.ResourceAttributes"),
                                          2: ("nonResourceAttributes", "authz.NonResourceAttributes")},
    "authz.ResourceAttributes": {1: ("namespace", S), 2: ("verb", S), 3: ("group", S), 4: ("version", S),
                                 5: ("resource", S), 6: ("subresource", S), 7: ("name", S)},
    "authz.NonResourceAttributes": {1: ("path", S), 2: ("verb", S)},
    "authz.SubjectAccessReviewStatus": {1: ("allowed", BOOL), 2: ("reason", S), 3: ("evaluationError", S),
                                        4: ("denied", BOOL)},
}


def _merge() -> dict[str, dict[int, Field]]:
    merged = {name: dict(fields) for name, fields in CORE.items()}
    for name, fields in LATER.items():
        merged.setdefault(name, {}).update(fields)
    return merged


MESSAGES = _merge()

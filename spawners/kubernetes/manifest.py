"""The Kubernetes objects of one user server, as plain JSON-ready dicts.

Pure functions of a `PodConfig` (the spawner's settings after the chosen
profile's overrides, frozen), the server's `ServerNames` (`names`) and its
environment: `pod_manifest`, `claim_manifest` (the user's volume) and
`service_manifest` (an optional per-pod Service). Nothing here talks to the
API; `spawners.kubernetes.spawner` sends what these build.

Safe by default: the server runs as a non-root uid, without privilege
escalation or capabilities, under the runtime's default seccomp profile, with
no service account token unless asked, and without the environment variables
Kubernetes would otherwise add for every Service in the namespace.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from spawners.kubernetes.names import (
    ANNOTATION_SERVER,
    ANNOTATION_USER,
    LABEL_APP,
    LABEL_MANAGED_BY,
    LABEL_PART,
    LABEL_USER,
    ServerNames,
    server_labels,
)

CONTAINER = "notebook"
PORT_NAME = "notebook-port"
HOME_VOLUME = "home"
TMP_VOLUME = "tmp"

Json = dict[str, Any]


@dataclass(frozen=True)
class PodConfig:
    """What a pod is built from (the spawner's settings for one start)."""

    image: str
    cmd: list[str]
    port: int = 8888
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: list[str] = field(default_factory=list)
    cpu_guarantee: float | None = None
    cpu_limit: float | None = None
    mem_guarantee: int | None = None
    mem_limit: int | None = None
    extra_resource_limits: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[Json] = field(default_factory=list)
    affinity: Json = field(default_factory=dict)
    service_account: str = ""
    automount_service_account_token: bool = False
    extra_labels: dict[str, str] = field(default_factory=dict)
    priority_class_name: str = ""
    init_containers: list[Json] = field(default_factory=list)
    extra_containers: list[Json] = field(default_factory=list)
    volumes: list[Json] = field(default_factory=list)
    volume_mounts: list[Json] = field(default_factory=list)
    run_as_uid: int = 1000
    run_as_gid: int = 100
    fs_gid: int | None = 100
    read_only_root_filesystem: bool = False
    # the user's volume claim, mounted at storage_mount_path; '' for none
    claim_name: str = ""
    storage_mount_path: str = "/home/jovyan"
    termination_grace_period: int = 5
    # the URL path the readiness probe asks (the server's prefix + 'api')
    ready_path: str = "/api"


def quantity_cpu(cores: float) -> str:
    """Cores as a Kubernetes quantity ('500m', '2')."""
    millis = round(cores * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def resources(cfg: PodConfig) -> Json:
    """requests (guarantees) and limits; extended resources (GPUs) go in limits, which
    Kubernetes also uses as their request."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if cfg.cpu_guarantee:
        requests["cpu"] = quantity_cpu(cfg.cpu_guarantee)
    if cfg.cpu_limit:
        limits["cpu"] = quantity_cpu(cfg.cpu_limit)
    if cfg.mem_guarantee:
        requests["memory"] = str(cfg.mem_guarantee)
    if cfg.mem_limit:
        limits["memory"] = str(cfg.mem_limit)
    for name, amount in cfg.extra_resource_limits.items():
        limits[name] = str(amount)
    out: Json = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def pod_labels(cfg: PodConfig, names: ServerNames) -> dict[str, str]:
    """extra_labels, then the server's own labels, which always win (adoption and
    NetworkPolicies rely on them)."""
    return {**cfg.extra_labels, **server_labels(names)}


def name_annotations(user_name: str, server_name: str) -> dict[str, str]:
    return {ANNOTATION_USER: user_name, ANNOTATION_SERVER: server_name}


def _env_list(env: dict[str, str]) -> list[Json]:
    return [{"name": k, "value": v} for k, v in env.items()]


def container_security(cfg: PodConfig) -> Json:
    return {
        "runAsNonRoot": True,
        "runAsUser": cfg.run_as_uid,
        "runAsGroup": cfg.run_as_gid,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": cfg.read_only_root_filesystem,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security(cfg: PodConfig) -> Json:
    security: Json = {
        "runAsNonRoot": True,
        "runAsUser": cfg.run_as_uid,
        "runAsGroup": cfg.run_as_gid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if cfg.fs_gid is not None:
        security["fsGroup"] = cfg.fs_gid
    return security


def _volumes(cfg: PodConfig) -> tuple[list[Json], list[Json]]:
    volumes = copy.deepcopy(cfg.volumes)
    mounts = copy.deepcopy(cfg.volume_mounts)
    if cfg.claim_name:
        volumes.append(
            {"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": cfg.claim_name}}
        )
        mounts.append({"name": HOME_VOLUME, "mountPath": cfg.storage_mount_path})
    if cfg.read_only_root_filesystem:
        # the server and its kernels still need a writable scratch directory
        volumes.append({"name": TMP_VOLUME, "emptyDir": {}})
        mounts.append({"name": TMP_VOLUME, "mountPath": "/tmp"})  # noqa: S108
    return volumes, mounts


def server_container(cfg: PodConfig, env: dict[str, str]) -> Json:
    _, mounts = _volumes(cfg)
    container: Json = {
        "name": CONTAINER,
        "image": cfg.image,
        "imagePullPolicy": cfg.image_pull_policy,
        "command": list(cfg.cmd),
        "env": _env_list(env),
        "ports": [{"name": PORT_NAME, "containerPort": cfg.port, "protocol": "TCP"}],
        "resources": resources(cfg),
        "securityContext": container_security(cfg),
        "volumeMounts": mounts,
        "readinessProbe": {
            "httpGet": {"path": cfg.ready_path, "port": cfg.port},
            "periodSeconds": 2,
            "failureThreshold": 3,
        },
    }
    return container


def pod_manifest(
    cfg: PodConfig,
    names: ServerNames,
    env: dict[str, str],
    user_name: str,
    server_name: str = "",
) -> Json:
    """The pod running one user server."""
    volumes, _ = _volumes(cfg)
    spec: Json = {
        "containers": [server_container(cfg, env), *copy.deepcopy(cfg.extra_containers)],
        "restartPolicy": "OnFailure",
        "securityContext": pod_security(cfg),
        "automountServiceAccountToken": cfg.automount_service_account_token,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": cfg.termination_grace_period,
        "volumes": volumes,
    }
    if cfg.init_containers:
        spec["initContainers"] = copy.deepcopy(cfg.init_containers)
    if cfg.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in cfg.image_pull_secrets]
    if cfg.service_account:
        spec["serviceAccountName"] = cfg.service_account
    if cfg.node_selector:
        spec["nodeSelector"] = dict(cfg.node_selector)
    if cfg.tolerations:
        spec["tolerations"] = copy.deepcopy(cfg.tolerations)
    if cfg.affinity:
        spec["affinity"] = copy.deepcopy(cfg.affinity)
    if cfg.priority_class_name:
        spec["priorityClassName"] = cfg.priority_class_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": names.pod,
            "labels": pod_labels(cfg, names),
            "annotations": name_annotations(user_name, server_name),
        },
        "spec": spec,
    }


def claim_manifest(
    names: ServerNames,
    user_name: str,
    capacity: str,
    storage_class: str = "",
    access_modes: list[str] | None = None,
    extra_labels: dict[str, str] | None = None,
) -> Json:
    """The user's PersistentVolumeClaim (shared by their servers unless claims are
    per server). '' storage_class: the cluster's default class."""
    labels = {
        **(extra_labels or {}),
        LABEL_APP: server_labels(names)[LABEL_APP],
        LABEL_PART: "user-storage",
        LABEL_MANAGED_BY: server_labels(names)[LABEL_MANAGED_BY],
        LABEL_USER: names.user_label,
    }
    spec: Json = {
        "accessModes": list(access_modes or ["ReadWriteOnce"]),
        "resources": {"requests": {"storage": capacity}},
    }
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": names.claim,
            "labels": labels,
            "annotations": {ANNOTATION_USER: user_name},
        },
        "spec": spec,
    }


def service_manifest(
    names: ServerNames,
    port: int,
    user_name: str,
    server_name: str = "",
    owner_uid: str = "",
) -> Json:
    """A ClusterIP Service in front of one server's pod; owned by the pod (when its uid
    is known), so Kubernetes deletes it with the pod."""
    metadata: Json = {
        "name": names.service,
        "labels": server_labels(names),
        "annotations": name_annotations(user_name, server_name),
    }
    if owner_uid:
        metadata["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Pod", "name": names.pod, "uid": owner_uid}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "type": "ClusterIP",
            "selector": server_labels(names),
            "ports": [{"name": PORT_NAME, "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }

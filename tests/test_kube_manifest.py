"""Pod, volume claim and service objects (spawners.kubernetes.manifest), and the
spawner's settings feeding them."""

from __future__ import annotations

from typing import Any

import pytest
from traitlets import TraitError
from traitlets.config import Config

from spawners.kubernetes import KubeSpawner
from spawners.kubernetes.manifest import (
    PodConfig,
    claim_manifest,
    pod_manifest,
    quantity_cpu,
    service_manifest,
)
from spawners.kubernetes.names import names_for

ENV = {"JUPYTERHUB_API_TOKEN": "secret", "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"}


def build(**settings: Any) -> dict[str, Any]:
    names = names_for("alice")
    cfg = PodConfig(image="img:1", cmd=["atrium-singleuser"], **settings)
    return pod_manifest(cfg, names, ENV, "alice")


def container(pod: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = pod["spec"]["containers"][0]
    return first


def test_safe_by_default() -> None:
    pod = build()
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container(pod)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsUser"] == 1000
    assert security["readOnlyRootFilesystem"] is False
    assert "serviceAccountName" not in spec
    assert "nodeSelector" not in spec


def test_command_environment_and_port() -> None:
    pod = build(port=9000, ready_path="/user/alice/api")
    c = container(pod)
    assert c["command"] == ["atrium-singleuser"]
    assert {"name": "JUPYTERHUB_API_TOKEN", "value": "secret"} in c["env"]
    assert c["ports"][0]["containerPort"] == 9000
    assert c["readinessProbe"]["httpGet"] == {"path": "/user/alice/api", "port": 9000}
    assert c["image"] == "img:1"
    assert c["imagePullPolicy"] == "IfNotPresent"


def test_resources_and_gpus() -> None:
    pod = build(
        cpu_guarantee=0.5,
        cpu_limit=2,
        mem_guarantee=512 * 1024**2,
        mem_limit=2 * 1024**3,
        extra_resource_limits={"nvidia.com/gpu": "1"},
    )
    assert container(pod)["resources"] == {
        "requests": {"cpu": "500m", "memory": str(512 * 1024**2)},
        "limits": {"cpu": "2", "memory": str(2 * 1024**3), "nvidia.com/gpu": "1"},
    }
    assert build()["spec"]["containers"][0]["resources"] == {}
    assert quantity_cpu(1.25) == "1250m"


def test_placement_and_identity() -> None:
    toleration = {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}
    pod = build(
        node_selector={"pool": "users"},
        tolerations=[toleration],
        affinity=affinity,
        priority_class_name="users",
        service_account="user-sa",
        automount_service_account_token=True,
        image_pull_secrets=["regcred"],
        image_pull_policy="Always",
    )
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"pool": "users"}
    assert spec["tolerations"] == [toleration]
    assert spec["affinity"] == affinity
    assert spec["priorityClassName"] == "users"
    assert spec["serviceAccountName"] == "user-sa"
    assert spec["automountServiceAccountToken"] is True
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert container(pod)["imagePullPolicy"] == "Always"


def test_volumes_sidecars_and_read_only_root() -> None:
    pod = build(
        claim_name="claim-alice",
        volumes=[{"name": "shared", "nfs": {"server": "nfs", "path": "/s"}}],
        volume_mounts=[{"name": "shared", "mountPath": "/shared"}],
        init_containers=[{"name": "init", "image": "busybox"}],
        extra_containers=[{"name": "side", "image": "busybox"}],
        read_only_root_filesystem=True,
    )
    spec = pod["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["home"]["persistentVolumeClaim"] == {"claimName": "claim-alice"}
    assert "shared" in volumes
    assert "tmp" in volumes  # a read-only root still gets a writable /tmp
    mounts = {m["mountPath"] for m in container(pod)["volumeMounts"]}
    assert mounts == {"/home/jovyan", "/shared", "/tmp"}
    assert container(pod)["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["initContainers"] == [{"name": "init", "image": "busybox"}]
    assert [c["name"] for c in spec["containers"]] == ["notebook", "side"]


def test_labels_cannot_be_overridden() -> None:
    pod = build(extra_labels={"team": "blue", "hub.jupyter.org/username": "mallory"})
    labels = pod["metadata"]["labels"]
    assert labels["team"] == "blue"
    assert labels["hub.jupyter.org/username"] == "alice"
    assert labels["app.kubernetes.io/name"] == "atrium"
    assert labels["app.kubernetes.io/component"] == "singleuser-server"
    assert pod["metadata"]["annotations"]["hub.jupyter.org/username"] == "alice"


def test_claim_and_service() -> None:
    names = names_for("Alice", "lab")
    claim = claim_manifest(names, "Alice", "5Gi", "fast", ["ReadWriteMany"])
    assert claim["metadata"]["name"] == names.claim
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "5Gi"}},
        "storageClassName": "fast",
    }
    assert "storageClassName" not in claim_manifest(names, "Alice", "5Gi")["spec"]
    service = service_manifest(names, 8888, "Alice", "lab", owner_uid="u-1")
    assert service["spec"]["selector"]["hub.jupyter.org/servername"] == "lab"
    assert service["spec"]["ports"][0]["port"] == 8888
    assert service["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def test_spawner_settings_reach_the_pod() -> None:
    c = Config()
    c.KubeSpawner.image = "lab:2"
    c.KubeSpawner.cpu_guarantee = 0.25
    c.KubeSpawner.cpu_limit = 1.0
    c.KubeSpawner.mem_limit = "1G"
    c.KubeSpawner.mem_guarantee = "256M"
    c.KubeSpawner.storage_capacity = ""
    c.KubeSpawner.args = ["--debug"]
    c.KubeSpawner.environment = {"EXTRA": "1"}
    spawner = KubeSpawner(user_name="alice", config=c)
    spawner.env = dict(ENV)
    names = spawner.server_names()
    cfg = spawner.pod_config(names)
    pod = pod_manifest(cfg, names, spawner.server_env(), "alice")
    c0 = container(pod)
    assert c0["image"] == "lab:2"
    assert c0["command"] == ["atrium-singleuser", "--debug"]
    assert c0["resources"]["limits"] == {"cpu": "1", "memory": str(1024**3)}
    assert c0["resources"]["requests"] == {"cpu": "250m", "memory": str(256 * 1024**2)}
    env = {e["name"]: e["value"] for e in c0["env"]}
    assert env["EXTRA"] == "1"
    assert env["JUPYTERHUB_SERVICE_URL"] == "http://0.0.0.0:8888/user/alice/"
    assert "home" not in {v["name"] for v in pod["spec"]["volumes"]}  # no storage


def test_root_is_refused() -> None:
    with pytest.raises(TraitError, match="root"):
        KubeSpawner(user_name="a", run_as_uid=0)


def test_a_guarantee_above_its_limit_is_a_clear_error() -> None:
    from spawners.base import SpawnError

    spawner = KubeSpawner(user_name="a", mem_guarantee="4G", mem_limit="2G")
    with pytest.raises(SpawnError, match=r"mem_guarantee \(4294967296\) is more than mem_limit"):
        spawner.pod_config(spawner.server_names())
    spawner = KubeSpawner(user_name="a", cpu_guarantee=2, cpu_limit=1)
    with pytest.raises(SpawnError, match=r"cpu_guarantee \(2\) is more than cpu_limit \(1\)"):
        spawner.pod_config(spawner.server_names())

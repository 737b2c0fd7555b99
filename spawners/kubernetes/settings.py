"""The Kubernetes spawner's settings, and what one start makes of them.

`KubeSettings` holds every setting of `spawners.kubernetes.KubeSpawner` (the
names the Helm chart's `hub.config.KubeSpawner.*` values use, compatible with
KubeSpawner's where they exist), checks them when they are configured, applies
the chosen profile's overrides for one start (`apply_profile`) and freezes the
result into the `manifest.PodConfig` a pod is built from. The lifecycle (start,
poll, stop) is in `spawners.kubernetes.spawner`.
"""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Dict, Enum, Float, Integer, List, TraitError, Unicode, default, validate

from spawners.base import ByteSize, Spawner, SpawnError
from spawners.kubernetes.manifest import PodConfig
from spawners.kubernetes.names import ServerNames, names_for
from spawners.kubernetes.profiles import (
    Profile,
    ProfileError,
    check_profiles,
    choose,
    render_form,
)
from spawners.kubernetes.profiles import options_from_form as profile_from_form

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _in_cluster_namespace() -> str:
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE, encoding="utf-8") as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class KubeSettings(Spawner):
    """The settings of the Kubernetes spawner (see the module docstring)."""

    # --- where ----------------------------------------------------------------------

    k8s_api_url = Unicode(
        "",
        help="URL of the Kubernetes API (e.g. http://127.0.0.1:8001 for `kubectl proxy`). "
        "'' uses the pod's service account when the hub runs in the cluster, else the "
        "local kubeconfig.",
    ).tag(config=True)
    namespace = Unicode(
        "",
        help="Namespace of the user pods, volumes and services. '' means the hub's own "
        "namespace (in a cluster), else 'default'.",
    ).tag(config=True)

    # --- the pod ----------------------------------------------------------------------

    image = Unicode(
        "atrium-singleuser:latest",
        help="Container image of the user servers (it must provide the server command, cmd).",
    ).tag(config=True)
    image_pull_policy = Enum(
        ["IfNotPresent", "Always", "Never"],
        "IfNotPresent",
        help="When the node pulls the image: IfNotPresent, Always or Never.",
    ).tag(config=True)
    image_pull_secrets = List(
        Unicode(),
        help="Names of Secrets (type kubernetes.io/dockerconfigjson) for pulling the image "
        "from a private registry.",
    ).tag(config=True)
    port = Integer(
        8888,
        help="Port the server listens on inside its pod (and the per-pod Service's port).",
    ).tag(config=True)
    cpu_guarantee = Float(
        None,
        allow_none=True,
        help="CPU reserved for each server (the pod's CPU request), in cores (0.5, 2). "
        "None: no request. cpu_limit is the most it may use.",
    ).tag(config=True)
    mem_guarantee = ByteSize(
        help="Memory reserved for each server (the pod's memory request), in bytes or with "
        "a unit: '1G'. None: no request. mem_limit is the most it may use.",
    ).tag(config=True)
    extra_resource_limits = Dict(
        help="Extended resources each server gets, as limits (Kubernetes requests the same "
        "amount), e.g. {'nvidia.com/gpu': '1'}.",
    ).tag(config=True)
    node_selector = Dict(
        help="Node labels a user pod must run on, e.g. {'node-purpose': 'users'}.",
    ).tag(config=True)
    tolerations = List(
        Dict(),
        help="Tolerations of user pods (Kubernetes' toleration objects), e.g. for tainted "
        "GPU nodes.",
    ).tag(config=True)
    affinity = Dict(
        help="The pod's affinity (Kubernetes' affinity object: nodeAffinity, podAffinity, "
        "podAntiAffinity).",
    ).tag(config=True)
    priority_class_name = Unicode(
        "",
        help="PriorityClass of user pods ('' : the cluster's default).",
    ).tag(config=True)
    extra_labels = Dict(
        help="Extra labels on user pods. The hub's own labels (app, component, user and "
        "server) cannot be overridden.",
    ).tag(config=True)
    init_containers = List(
        Dict(),
        help="Init containers run before the server (Kubernetes' container objects).",
    ).tag(config=True)
    extra_containers = List(
        Dict(),
        help="Sidecar containers run next to the server (Kubernetes' container objects).",
    ).tag(config=True)
    volumes = List(
        Dict(),
        help="Extra volumes of the pod (Kubernetes' volume objects); mount them with "
        "volume_mounts.",
    ).tag(config=True)
    volume_mounts = List(
        Dict(),
        help="Extra volume mounts of the server container (Kubernetes' volumeMount objects).",
    ).tag(config=True)

    # --- identity and security -------------------------------------------------------

    service_account = Unicode(
        "",
        help="ServiceAccount of user pods ('' : the namespace's default account).",
    ).tag(config=True)
    automount_service_account_token = Bool(
        False,
        help="Mount the service account's API token in user pods. Off by default: a user's "
        "code has no business with the Kubernetes API.",
    ).tag(config=True)
    run_as_uid = Integer(
        1000,
        help="uid the server runs as (never 0: servers do not run as root).",
    ).tag(config=True)
    run_as_gid = Integer(100, help="Primary gid the server runs as.").tag(config=True)
    fs_gid = Integer(
        100,
        allow_none=True,
        help="Group that owns the pod's volumes (fsGroup), so the server can write to its "
        "volume. None: not set.",
    ).tag(config=True)
    read_only_root_filesystem = Bool(
        False,
        help="Run the server with a read-only root filesystem (a writable /tmp is mounted).",
    ).tag(config=True)

    # --- storage -----------------------------------------------------------------------

    storage_capacity = Unicode(
        "10Gi",
        help="Size of each user's PersistentVolumeClaim (a Kubernetes quantity, e.g. '10Gi'), "
        "created when missing and kept when the server stops. '' : no volume.",
    ).tag(config=True)
    storage_class = Unicode(
        "",
        help="StorageClass of user volumes ('' : the cluster's default class).",
    ).tag(config=True)
    storage_access_modes = List(
        Unicode(),
        ["ReadWriteOnce"],
        help="Access modes of user volumes.",
    ).tag(config=True)
    storage_mount_path = Unicode(
        "/home/jovyan",
        help="Where the user's volume is mounted in the server container (its home).",
    ).tag(config=True)
    storage_per_server = Bool(
        False,
        help="Give each named server its own volume; by default all of a user's servers "
        "share the user's volume.",
    ).tag(config=True)
    delete_pvc_with_user = Bool(
        False,
        help="Delete volumes (their files!) with what they belong to: the user's volume "
        "when the user is deleted from the hub, a named server's own volume "
        "(storage_per_server) when the server is deleted.",
    ).tag(config=True)

    # --- reaching the server, stopping it ------------------------------------------------

    services_enabled = Bool(
        False,
        help="Give each server a ClusterIP Service and reach it through that, instead of by "
        "its pod IP.",
    ).tag(config=True)
    delete_grace_period = Integer(
        5,
        help="Seconds a server has to exit after its pod is deleted before it is killed.",
    ).tag(config=True)

    # --- profiles ------------------------------------------------------------------------

    profile_list = List(
        Dict(),
        help="Server profiles to choose from, shown as the options form: a list of "
        "{display_name, description, slug, kubespawner_override (settings of this spawner), "
        "allowed_groups (empty: everyone), default}.",
    ).tag(config=True)

    @validate("run_as_uid")
    def _not_root(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise TraitError(
                f"run_as_uid must be at least 1 (servers never run as root), not {value}"
            )
        return value

    @validate("cpu_guarantee")
    def _positive_guarantee(self, proposal: Any) -> float | None:
        value = proposal["value"]
        if value is not None and not value > 0:
            raise TraitError(f"cpu_guarantee must be a positive number of cores, not {value}")
        return value  # type: ignore[no-any-return]

    @validate("port")
    def _port(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if not 0 < value < 65536:
            raise TraitError(f"port must be between 1 and 65535, not {value}")
        return value

    @validate("delete_grace_period")
    def _grace(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value < 0:
            raise TraitError(f"delete_grace_period must not be negative, not {value}")
        return value

    @validate("profile_list")
    def _profiles(self, proposal: Any) -> list[Any]:
        value = list(proposal["value"])
        try:
            check_profiles(value, self.trait_names(config=True))
        except ProfileError as e:
            raise TraitError(str(e)) from None
        return value

    @default("options_form")
    def _profile_form(self) -> str:
        return render_form(self.profiles, self.user_groups)

    def __init__(self, **kwargs: Any) -> None:
        # the groups of the server's user, when the hub tells (profiles' allowed_groups);
        # None: not known, so only profiles open to everyone may be chosen
        self.user_groups: list[str] | None = None
        super().__init__(**kwargs)
        self._overridden: dict[str, Any] = {}
        self.pod_name = ""
        self.pod_uid = ""
        self.pod_namespace = ""
        self.pvc_name = ""
        self.service_name = ""
        self.api_calls = 0  # API requests made by this spawner (not its informers)

    @property
    def profiles(self) -> list[Profile]:
        return check_profiles(self.profile_list)

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        if self.profile_list:
            return profile_from_form(formdata)
        return super().options_from_form(formdata)

    # --- settings for one start ------------------------------------------------------------

    def effective_namespace(self) -> str:
        return self.pod_namespace or self.namespace or _in_cluster_namespace()

    def server_names(self) -> ServerNames:
        """The names of this server's objects: the current rules, but the claim (and a
        pod still recorded) as the state remembers them."""
        fresh = names_for(self.user_name, self.server_name, self.storage_per_server)
        return ServerNames(
            pod=self.pod_name or fresh.pod,
            claim=self.pvc_name or fresh.claim,
            service=self.service_name or fresh.service,
            user_label=fresh.user_label,
            server_label=fresh.server_label,
        )

    def check_user_options(self, user_options: dict[str, Any]) -> None:
        """ProfileError (a ValueError, its message for the user) when `user_options` choose
        no profile this user may use: for the hub to refuse a start with a 400 before it
        begins. `start()` checks again in any case."""
        choose(self.profiles, user_options, self.user_groups)

    def apply_profile(self) -> Profile | None:
        """Put back the settings an earlier start's profile changed, then apply the profile
        `user_options` choose (SpawnError for a bad or forbidden choice)."""
        for name, value in self._overridden.items():
            setattr(self, name, value)
        self._overridden = {}
        try:
            profile = choose(self.profiles, self.user_options, self.user_groups)
        except ProfileError as e:
            raise SpawnError(str(e)) from None
        if profile is None:
            return None
        for name, value in profile.override.items():
            self._overridden.setdefault(name, getattr(self, name))
            try:
                setattr(self, name, value)
            except TraitError as e:
                raise SpawnError(
                    f"the profile {profile.display_name!r} sets {name} wrongly: {e}"
                ) from None
        return profile

    def check_resources(self) -> None:
        """SpawnError when a guarantee exceeds its limit (the API would refuse the pod)."""
        for what, guarantee, limit in (
            ("cpu", self.cpu_guarantee, self.cpu_limit),
            ("mem", self.mem_guarantee, self.mem_limit),
        ):
            if guarantee and limit and guarantee > limit:
                raise SpawnError(
                    f"{what}_guarantee ({_number(guarantee)}) is more than {what}_limit "
                    f"({_number(limit)}); ask an admin to fix the server settings"
                )

    def pod_config(self, names: ServerNames) -> PodConfig:
        self.check_resources()
        env = self.get_env()
        prefix = env.get("JUPYTERHUB_SERVICE_PREFIX") or "/"
        return PodConfig(
            image=self.image,
            cmd=[*self.cmd, *self.args],
            port=self.port,
            image_pull_policy=self.image_pull_policy,
            image_pull_secrets=list(self.image_pull_secrets),
            cpu_guarantee=self.cpu_guarantee,
            cpu_limit=self.cpu_limit,
            mem_guarantee=self.mem_guarantee,
            mem_limit=self.mem_limit,
            extra_resource_limits={str(k): str(v) for k, v in self.extra_resource_limits.items()},
            node_selector={str(k): str(v) for k, v in self.node_selector.items()},
            tolerations=list(self.tolerations),
            affinity=dict(self.affinity),
            service_account=self.service_account,
            automount_service_account_token=self.automount_service_account_token,
            extra_labels={str(k): str(v) for k, v in self.extra_labels.items()},
            priority_class_name=self.priority_class_name,
            init_containers=list(self.init_containers),
            extra_containers=list(self.extra_containers),
            volumes=list(self.volumes),
            volume_mounts=list(self.volume_mounts),
            run_as_uid=self.run_as_uid,
            run_as_gid=self.run_as_gid,
            fs_gid=self.fs_gid,
            read_only_root_filesystem=self.read_only_root_filesystem,
            claim_name=names.claim if self.storage_capacity else "",
            storage_mount_path=self.storage_mount_path,
            termination_grace_period=self.delete_grace_period,
            ready_path=f"{prefix}api",
        )

    def server_env(self) -> dict[str, str]:
        """The environment contract, plus where the server listens inside its pod."""
        env = self.get_env()
        prefix = env.get("JUPYTERHUB_SERVICE_PREFIX") or "/"
        env["JUPYTERHUB_SERVICE_URL"] = f"http://0.0.0.0:{self.port}{prefix}"
        return env

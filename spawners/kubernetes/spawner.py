"""The Kubernetes spawner: each user server is a pod, with the user's volume.

`KubeSpawner.start` creates the user's PersistentVolumeClaim when it is
missing, then the pod (`manifest`), and waits, reading the shared pod and
event informers (`informer`), until the pod runs and is ready and the server
answers; the pod's events become the spawn page's progress. A start fails fast,
with a message the user can act on, when the image cannot be pulled, no node
can run the pod, its container crashes, or the namespace's quota is exceeded
(a 403 from the API), and it never outlives `start_timeout`. A pod that
already exists (409) is adopted when it is this server's, and refused clearly
when it is not. `stop` deletes the pod with a grace period and waits until it
is gone; `poll` reads the informer only, never the API.

The pod, claim and service names (`names`) are kept in the state the hub
stores, so a restarted hub finds the pod again (`load_state` + `poll`), and a
start the previous hub never recorded is still found and ended by its labels.
Profiles (`profiles`) are the options form; the chosen one's overrides apply to
the settings for that start only.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from traitlets import Bool, Dict, Enum, Float, Integer, List, TraitError, Unicode, default, validate

from spawners.base import ByteSize, Spawner, SpawnError
from spawners.kubernetes import podstatus
from spawners.kubernetes.client import Connection, Json, KubeError, call, connect
from spawners.kubernetes.informer import Informer, shared
from spawners.kubernetes.manifest import (
    PodConfig,
    claim_manifest,
    pod_manifest,
    service_manifest,
)
from spawners.kubernetes.names import (
    ANNOTATION_SERVER,
    ANNOTATION_USER,
    APP,
    LABEL_APP,
    LABEL_MANAGED_BY,
    ServerNames,
    label_selector,
    names_for,
    server_labels,
)
from spawners.kubernetes.profiles import (
    Profile,
    ProfileError,
    check_profiles,
    choose,
    render_form,
)
from spawners.kubernetes.profiles import options_from_form as profile_from_form

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
# how long poll() waits for a new informer's first list before saying "still running"
POLL_SYNC_WAIT = 10.0
# while an informer is stale, a stop also asks the API this often whether the pod is gone
STOP_RECHECK = 5.0


def _in_cluster_namespace() -> str:
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE, encoding="utf-8") as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"


def _url_host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


async def _answers(url_host: str, port: int, path: str, within: float = 2.0) -> bool:
    """Does GET `path` get a 2xx or 3xx answer?"""
    host = url_host.strip("[]")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), within)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {url_host}:{port}\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), within)
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
    parts = line.split()
    return len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1][:1] in (b"2", b"3")


def _api_failure(what: str, e: KubeError) -> SpawnError:
    """A SpawnError for a failed API call, saying plainly what a quota refusal means."""
    if e.status == 403 and "quota" in e.message.lower():
        return SpawnError(f"{what}: the namespace's resource quota is exceeded ({e.message})")
    if e.status == 403:
        return SpawnError(f"{what}: the hub is not allowed to ({e.message})")
    if e.status == 0:
        return SpawnError(f"{what}: the Kubernetes API did not answer ({e.message})")
    return SpawnError(f"{what}: the Kubernetes API answered {e.status} ({e.message})")


class KubeSpawner(Spawner):
    """Runs each user server as a Kubernetes pod (see the module docstring)."""

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
        help="Delete the user's volume (their files!) when the user is deleted from the hub.",
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

    # --- state ---------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for key, value in (
            ("pod_name", self.pod_name),
            ("pod_uid", self.pod_uid),
            ("namespace", self.pod_namespace),
            ("pvc_name", self.pvc_name),
            ("service_name", self.service_name),
        ):
            if value:
                state[key] = value
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self.pod_name = str(state.get("pod_name") or "")
        self.pod_uid = str(state.get("pod_uid") or "")
        self.pod_namespace = str(state.get("namespace") or "")
        self.pvc_name = str(state.get("pvc_name") or "")
        self.service_name = str(state.get("service_name") or "")

    def clear_state(self) -> None:
        """Forget the pod; the volume claim's name (and its namespace) stay, so the user's
        volume is found again whatever the naming rules have become."""
        self.pod_name = ""
        self.pod_uid = ""
        self.service_name = ""
        if not self.pvc_name:
            self.pod_namespace = ""

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

    def pod_config(self, names: ServerNames) -> PodConfig:
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

    # --- informers -------------------------------------------------------------------------

    async def _connection(self) -> Connection:
        return await connect(self.k8s_api_url)

    def _informers(self, connection: Connection, namespace: str) -> tuple[Informer, Informer]:
        labels = {
            LABEL_APP: APP,
            LABEL_MANAGED_BY: server_labels(self.server_names())[LABEL_MANAGED_BY],
        }
        pods = shared(connection, namespace, "pods", labels=labels)
        events = shared(connection, namespace, "events")
        return pods, events

    async def _api(self, what: str, operation: Any, *args: Any, **kwargs: Any) -> Json:
        self.api_calls += 1
        try:
            return await call(operation, *args, **kwargs)
        except KubeError as e:
            self.log.debug("%s for %s: %s", what, self.log_name, e)
            raise

    # --- start ---------------------------------------------------------------------------

    async def start(self) -> str:
        self.clear_state()
        self.begin_progress()
        deadline = self.start_timeout - 1.0 if self.start_timeout > 2 else self.start_timeout
        try:
            async with asyncio.timeout(deadline):
                return await self._start()
        except TimeoutError:
            raise SpawnError(
                f"the pod {self.pod_name or '(not created)'} was not ready within "
                f"{self.start_timeout:g} s{self._last_seen()}"
            ) from None
        finally:
            self.end_progress()

    def _last_seen(self) -> str:
        detail = getattr(self, "_detail", "")
        return f" (it was {detail})" if detail else ""

    async def _start(self) -> str:
        self._detail = ""
        self.apply_profile()
        connection = await self._connection()
        namespace = self.effective_namespace()
        self.pod_namespace = namespace
        names = self.server_names()
        pods, events = self._informers(connection, namespace)
        self.report_progress(5, "preparing the server's pod")
        if self.storage_capacity:
            await self._ensure_claim(connection, namespace, names)
        manifest = pod_manifest(
            self.pod_config(names), names, self.server_env(), self.user_name, self.server_name
        )
        created = await self._create_pod(connection, namespace, names, manifest, pods)
        self.pod_name = names.pod
        self.pod_uid = str((created.get("metadata") or {}).get("uid") or "")
        # a hub that dies from here on has what its successor needs to find the pod
        await self.save_state(self.get_state())
        self.report_progress(20, f"pod {names.pod} created, waiting for it to run")
        pod = await self._wait_ready(pods, events, names.pod)
        host = podstatus.pod_ip(pod)
        if self.services_enabled:
            host = await self._ensure_service(connection, namespace, names)
            await self.save_state(self.get_state())
        url_host = _url_host(host)
        prefix = self.get_env().get("JUPYTERHUB_SERVICE_PREFIX") or "/"
        self.report_progress(90, "waiting for the server to answer")
        await self._wait_answers(pods, url_host, f"{prefix}api")
        self.report_progress(100, "server is ready")
        return f"http://{url_host}:{self.port}"

    async def _ensure_claim(
        self, connection: Connection, namespace: str, names: ServerNames
    ) -> None:
        body = claim_manifest(
            names,
            self.user_name,
            self.storage_capacity,
            self.storage_class,
            list(self.storage_access_modes),
        )
        try:
            await self._api(
                "creating the volume claim",
                connection.core.create_namespaced_persistent_volume_claim,
                namespace,
                body,
            )
            self.report_progress(10, f"volume {names.claim} created")
        except KubeError as e:
            if e.status != 409:  # 409: the user's volume is already there, as it should be
                raise _api_failure("the user's volume could not be created", e) from None
        self.pvc_name = names.claim

    async def _create_pod(
        self,
        connection: Connection,
        namespace: str,
        names: ServerNames,
        manifest: Json,
        pods: Informer,
    ) -> Json:
        for _attempt in range(3):
            try:
                return await self._api(
                    "creating the pod", connection.core.create_namespaced_pod, namespace, manifest
                )
            except KubeError as e:
                if e.status != 409:
                    raise _api_failure("the server's pod could not be created", e) from None
            existing = await self._read_pod(connection, namespace, names.pod)
            if existing is None:
                continue  # deleted meanwhile: create it again
            if not self._is_ours(existing):
                raise SpawnError(
                    f"a pod named {names.pod} already exists in {namespace} and belongs to "
                    "another server; ask an admin to remove it"
                )
            if not (existing.get("metadata") or {}).get("deletionTimestamp"):
                self.report_progress(
                    15, f"found this server's pod {names.pod} running: adopting it"
                )
                return existing
            # the pod of an earlier run is still going away: create ours once it is gone
            self.report_progress(10, f"waiting for the previous pod {names.pod} to go away")
            await self._wait_gone(connection, namespace, names.pod, pods)
        raise SpawnError(f"the pod {names.pod} could not be created: it keeps coming back")

    def _is_ours(self, pod: Json) -> bool:
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        return (
            annotations.get(ANNOTATION_USER) == self.user_name
            and annotations.get(ANNOTATION_SERVER, "") == self.server_name
        )

    async def _read_pod(self, connection: Connection, namespace: str, name: str) -> Json | None:
        try:
            return await self._api(
                "reading the pod", connection.core.read_namespaced_pod, name, namespace
            )
        except KubeError as e:
            if e.status == 404:
                return None
            raise _api_failure(f"the pod {name} could not be read", e) from None

    async def _wait_ready(self, pods: Informer, events: Informer, name: str) -> Json:
        """Follow the pod and its events until it is ready; SpawnError once it cannot be."""
        changed = asyncio.Event()
        pods.add_waiter(name, changed)
        events.add_waiter(name, changed)
        seen: set[str] = set()
        progress = 20
        warned_stale = False
        try:
            while True:
                changed.clear()
                for event in sorted(events.for_key(name), key=podstatus.event_time):
                    uid = podstatus.event_uid(event)
                    if uid in seen or not podstatus.event_is_for(event, self.pod_uid):
                        continue
                    seen.add(uid)
                    progress = min(85, progress + 8)
                    self.report_progress(progress, podstatus.event_text(event))
                pod = pods.get(name)
                if pod is not None and self.pod_uid and _uid(pod) not in ("", self.pod_uid):
                    pod = None  # an older pod of the same name, not yet gone from the cache
                if pod is not None:
                    state = podstatus.starting_state(pod)
                    if state.failure:
                        raise SpawnError(state.failure)
                    if state.ready:
                        return pod
                    self._detail = state.detail
                elif pods.synced and not pods.stale and pods.get(name) is None and seen:
                    raise SpawnError(f"the pod {name} was deleted while it was starting")
                if pods.stale and not warned_stale and pods.synced:
                    warned_stale = True
                    self.report_progress(progress, "lost the watch on Kubernetes; reconnecting")
                await changed.wait()
        finally:
            pods.remove_waiter(name, changed)
            events.remove_waiter(name, changed)

    async def _wait_answers(self, pods: Informer, url_host: str, path: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.http_timeout
        delay = 0.02
        while not await _answers(url_host, self.port, path):
            pod = pods.get(self.pod_name)
            if pod is not None:
                state = podstatus.starting_state(pod)
                if state.failure:
                    raise SpawnError(state.failure)
            if loop.time() > deadline:
                raise SpawnError(
                    f"the server did not answer at {path} within {self.http_timeout:g} s"
                )
            await asyncio.sleep(delay)
            delay = min(0.5, delay * 1.5)

    async def _ensure_service(
        self, connection: Connection, namespace: str, names: ServerNames
    ) -> str:
        body = service_manifest(names, self.port, self.user_name, self.server_name, self.pod_uid)
        try:
            service = await self._api(
                "creating the service", connection.core.create_namespaced_service, namespace, body
            )
        except KubeError as e:
            if e.status != 409:
                raise _api_failure("the server's service could not be created", e) from None
            try:
                service = await self._api(
                    "reading the service",
                    connection.core.read_namespaced_service,
                    names.service,
                    namespace,
                )
            except KubeError as e2:
                raise _api_failure("the server's service could not be read", e2) from None
        self.service_name = names.service
        cluster_ip = str((service.get("spec") or {}).get("clusterIP") or "")
        if cluster_ip and cluster_ip != "None":
            return cluster_ip
        return f"{names.service}.{namespace}.svc"

    # --- poll ----------------------------------------------------------------------------

    async def poll(self) -> int | None:
        if not self.pod_name:
            return 0
        connection = await self._connection()
        pods, _ = self._informers(connection, self.effective_namespace())
        if not pods.synced and not await pods.wait_synced(POLL_SYNC_WAIT):
            # not known to be gone: saying so would have the hub forget a live server
            self.log.warning(
                "Cannot tell whether %s runs: the pod list is not available (%s)",
                self.log_name,
                pods.last_error or "no answer yet",
            )
            return None
        pod = pods.get(self.pod_name)
        if pod is None:
            return 0
        if self.pod_uid and _uid(pod) not in ("", self.pod_uid):
            return 0  # another pod of the same name: ours is gone
        return podstatus.exit_status(pod)

    # --- stop ----------------------------------------------------------------------------

    async def stop(self, now: bool = False) -> None:
        connection = await self._connection()
        namespace = self.effective_namespace()
        pods, _ = self._informers(connection, namespace)
        names = [self.pod_name] if self.pod_name else await self._find_pods(connection, namespace)
        grace = 0 if now else self.delete_grace_period
        for name in names:
            await self._delete(
                "the pod", connection.core.delete_namespaced_pod, name, namespace, grace
            )
        if self.services_enabled or self.service_name:
            service = self.service_name or self.server_names().service
            await self._delete(
                "the service", connection.core.delete_namespaced_service, service, namespace, None
            )
        for name in names:
            await self._wait_gone(connection, namespace, name, pods)

    async def _find_pods(self, connection: Connection, namespace: str) -> list[str]:
        """This server's pods by label (a start the hub never recorded), whose annotations
        confirm they are this server's."""
        labels = server_labels(self.server_names())
        try:
            found = await self._api(
                "listing the server's pods",
                connection.core.list_namespaced_pod,
                namespace,
                label_selector=label_selector(labels),
            )
        except KubeError as e:
            raise SpawnError(f"the server's pods could not be listed: {e.message}") from None
        return [
            str(pod["metadata"]["name"]) for pod in found.get("items") or [] if self._is_ours(pod)
        ]

    async def _delete(
        self, what: str, operation: Any, name: str, namespace: str, grace: int | None
    ) -> None:
        options: dict[str, Any] = {}
        if grace is not None:
            options["grace_period_seconds"] = grace
        try:
            await self._api(f"deleting {what}", operation, name, namespace, **options)
        except KubeError as e:
            if e.status != 404:
                raise SpawnError(f"{what} {name} could not be deleted: {e.message}") from None

    async def _wait_gone(
        self, connection: Connection, namespace: str, name: str, pods: Informer
    ) -> None:
        """Until the pod `name` is gone: from the informer, and from the API itself now and
        then while the informer is stale."""
        changed = asyncio.Event()
        pods.add_waiter(name, changed)
        try:
            while True:
                changed.clear()
                if not pods.stale and pods.get(name) is None:
                    return
                if pods.stale and await self._read_pod(connection, namespace, name) is None:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(STOP_RECHECK):
                        await changed.wait()
        finally:
            pods.remove_waiter(name, changed)

    # --- deleting the user ---------------------------------------------------------------

    async def delete_forever(self) -> None:
        """The user is deleted: delete their volume when delete_pvc_with_user says so."""
        if not self.delete_pvc_with_user or not self.storage_capacity:
            return
        connection = await self._connection()
        claim = self.server_names().claim
        await self._delete(
            "the user's volume",
            connection.core.delete_namespaced_persistent_volume_claim,
            claim,
            self.effective_namespace(),
            None,
        )
        self.pvc_name = ""


def _uid(obj: Json) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")

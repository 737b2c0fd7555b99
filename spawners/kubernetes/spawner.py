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
stores, so a restarted hub finds the pod again (`load_state` + `poll`); a pod
whose state was lost is found by its labels (and its annotations, which hold
the exact user and server names), by `poll` in the informer and by `stop`.
A stop deletes only the pod it started (a uid precondition).
Profiles (`profiles`) are the options form; the chosen one's overrides apply to
the settings for that start only.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from spawners.base import SpawnError
from spawners.kubernetes import podstatus
from spawners.kubernetes.client import Connection, Json, KubeError, call, close_all, connect
from spawners.kubernetes.informer import Informer, shared, stop_all
from spawners.kubernetes.manifest import claim_manifest, pod_manifest, service_manifest
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
from spawners.kubernetes.settings import KubeSettings

# how long poll() waits for a new informer's first list before saying "still running"
POLL_SYNC_WAIT = 10.0
# how long a start waits for the claim informer's first list before it just creates the
# claim (a 409 then says it was there)
CLAIM_SYNC_WAIT = 2.0
# while an informer is stale, a stop also asks the API this often whether the pod is gone
STOP_RECHECK = 5.0
# tries of a create or delete that fails with a 5xx or no answer
API_ATTEMPTS = 3


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


class KubeSpawner(KubeSettings):
    """Runs each user server as a Kubernetes pod (see the module docstring)."""

    @classmethod
    async def release_shared(cls) -> None:
        """The shared informers' watches and the API connections end with the hub."""
        await stop_all()
        await close_all()

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

    # --- informers -------------------------------------------------------------------------

    async def _connection(self) -> Connection:
        return await connect(self.k8s_api_url)

    def _labels(self) -> dict[str, str]:
        """What the shared pod and volume informers select: everything this hub made."""
        return {
            LABEL_APP: APP,
            LABEL_MANAGED_BY: server_labels(self.server_names())[LABEL_MANAGED_BY],
        }

    def _informers(self, connection: Connection, namespace: str) -> tuple[Informer, Informer]:
        pods = shared(connection, namespace, "pods", labels=self._labels())
        events = shared(connection, namespace, "events")
        return pods, events

    def _claims(self, connection: Connection, namespace: str) -> Informer:
        return shared(connection, namespace, "persistentvolumeclaims", labels=self._labels())

    async def _api(self, what: str, operation: Any, *args: Any, **kwargs: Any) -> Json:
        self.api_calls += 1
        try:
            return await call(operation, *args, **kwargs)
        except KubeError as e:
            self.log.debug("%s for %s: %s", what, self.log_name, e)
            raise

    async def _create(self, what: str, operation: Any, namespace: str, body: Json) -> Json:
        """Create an object (a create that did happen before a failure answers 409 when
        tried again, which callers handle)."""
        return await self._retrying(what, operation, namespace, body)

    async def _retrying(self, what: str, operation: Any, *args: Any, **kwargs: Any) -> Json:
        """An API call, tried again after a 5xx or no answer."""
        for attempt in range(API_ATTEMPTS):
            try:
                return await self._api(what, operation, *args, **kwargs)
            except KubeError as e:
                transient = e.status == 0 or e.status >= 500
                if not transient or attempt == API_ATTEMPTS - 1:
                    raise
                self.log.warning("%s for %s failed (%s); trying again", what, self.log_name, e)
                await asyncio.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

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

    # what the start under way last saw of its pod, and the pod informer it reads
    _detail = ""
    _watching: Informer | None = None

    def _last_seen(self) -> str:
        pods = self._watching
        if pods is not None and pods.stale:
            error = pods.last_error or "no answer yet"
            return f" (the Kubernetes API could not be watched: {error})"
        return f" (it was {self._detail})" if self._detail else ""

    async def _start(self) -> str:
        self._detail = ""
        self._watching = None
        self.apply_profile()
        connection = await self._connection()
        namespace = self.effective_namespace()
        self.pod_namespace = namespace
        names = self.server_names()
        pods, events = self._informers(connection, namespace)
        self._watching = pods
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
        # reached through a Service, the pod must be Ready (the Service sends only to ready
        # pods); reached at its IP, the hub asks the server itself as soon as it runs,
        # without waiting for the kubelet's next readiness probe
        pod = await self._wait_ready(pods, events, names.pod, need_ready=self.services_enabled)
        host, port = podstatus.pod_ip(pod), self.pod_port(pod)
        if self.services_enabled:
            service = await self._ensure_service(connection, namespace, names)
            host, port = self.service_address(service)
            await self.save_state(self.get_state())
        url_host = _url_host(host)
        prefix = self.get_env().get("JUPYTERHUB_SERVICE_PREFIX") or "/"
        self.report_progress(90, "waiting for the server to answer")
        await self._wait_answers(pods, events, url_host, port, f"{prefix}api")
        self._report_events(events, names.pod)
        self.report_progress(100, "server is ready")
        return f"http://{url_host}:{port}"

    def pod_port(self, pod: Json) -> int:
        """The port the server answers on at the pod's IP: `port` (a hook for setups where
        pods share one network, such as the tests' simulated node)."""
        return int(self.port)

    async def _ensure_claim(
        self, connection: Connection, namespace: str, names: ServerNames
    ) -> None:
        """The server's volume claim, created when missing. The shared claim informer says
        whether it is there (no API call when it is); a claim still being deleted (its
        user deleted and added again, its old pod still holding it) is waited for, since
        a pod using it would never start."""
        claims = self._claims(connection, namespace)
        found = None
        if await claims.wait_synced(CLAIM_SYNC_WAIT) and not claims.stale:
            found = claims.get(names.claim)
        if found is not None and (found.get("metadata") or {}).get("deletionTimestamp"):
            self.report_progress(8, f"waiting for the previous volume {names.claim} to be deleted")
            await self._wait_claim_gone(claims, names.claim)
            found = None
        if found is None:
            await self._create_claim(connection, namespace, names)
        self.pvc_name = names.claim

    async def _wait_claim_gone(self, claims: Informer, name: str) -> None:
        changed = asyncio.Event()
        claims.add_waiter(name, changed)
        try:
            while (claims.get(name) or {}).get("metadata", {}).get("deletionTimestamp"):
                changed.clear()
                await changed.wait()
        finally:
            claims.remove_waiter(name, changed)

    async def _create_claim(
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
            await self._create(
                "creating the volume claim",
                connection.core.create_namespaced_persistent_volume_claim,
                namespace,
                body,
            )
            self.report_progress(10, f"volume {names.claim} created")
        except KubeError as e:
            if e.status != 409:  # 409: the user's volume is already there, as it should be
                raise _api_failure("the user's volume could not be created", e) from None

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
                return await self._create(
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

    async def _wait_ready(
        self, pods: Informer, events: Informer, name: str, need_ready: bool = True
    ) -> Json:
        """Follow the pod and its events until it is ready (or, without `need_ready`, until
        its containers run); SpawnError once it cannot be."""
        changed = asyncio.Event()
        pods.add_waiter(name, changed)
        events.add_waiter(name, changed)
        self._events_seen = set()
        self._progress = 20
        warned_stale = False
        appeared = False
        try:
            while True:
                changed.clear()
                self._report_events(events, name)
                pod = pods.get(name)
                if pod is not None and self.pod_uid and _uid(pod) not in ("", self.pod_uid):
                    pod = None  # an older pod of the same name, not yet gone from the cache
                if pod is not None:
                    appeared = True
                    state = podstatus.starting_state(pod)
                    if state.failure:
                        raise SpawnError(state.failure)
                    if state.ready or (state.running and not need_ready):
                        return pod
                    self._detail = state.detail
                elif appeared and not pods.stale:
                    raise SpawnError(f"the pod {name} was deleted while it was starting")
                if pods.stale and not warned_stale and pods.synced:
                    warned_stale = True
                    self.report_progress(
                        self._progress, "lost the watch on Kubernetes; reconnecting"
                    )
                await changed.wait()
        finally:
            pods.remove_waiter(name, changed)
            events.remove_waiter(name, changed)

    # the pod's events shown so far in this start's progress (by event uid), set anew by
    # each start's _wait_ready (no shared default: a class-level set would be shared)
    _events_seen: set[str]
    _progress = 20

    def _report_events(self, events: Informer, name: str) -> None:
        """The pod's events not shown yet, as progress, in the order they happened."""
        for event in sorted(events.for_key(name), key=podstatus.event_time):
            uid = podstatus.event_uid(event)
            if uid in self._events_seen or not podstatus.event_is_for(event, self.pod_uid):
                continue
            self._events_seen.add(uid)
            self._progress = min(85, self._progress + 8)
            self.report_progress(self._progress, podstatus.event_text(event))

    async def _wait_answers(
        self, pods: Informer, events: Informer, url_host: str, port: int, path: str
    ) -> None:
        """Until the server answers HTTP; the pod's events that still come (its container
        started, say) are shown meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.http_timeout
        delay = 0.02
        while not await _answers(url_host, port, path):
            self._report_events(events, self.pod_name)
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

    def service_address(self, service: Json) -> tuple[str, int]:
        """Where the server's Service answers: its cluster IP (or, for a headless one, its
        DNS name) and `port` (a hook, as `pod_port` is)."""
        cluster_ip = str((service.get("spec") or {}).get("clusterIP") or "")
        if cluster_ip and cluster_ip != "None":
            return cluster_ip, self.port
        meta = service.get("metadata") or {}
        return f"{meta.get('name')}.{meta.get('namespace') or self.effective_namespace()}.svc", (
            self.port
        )

    async def _ensure_service(
        self, connection: Connection, namespace: str, names: ServerNames
    ) -> Json:
        body = service_manifest(names, self.port, self.user_name, self.server_name, self.pod_uid)
        try:
            service = await self._create(
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
        return service

    # --- poll ----------------------------------------------------------------------------

    async def poll(self) -> int | None:
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
        if not self.pod_name:
            # no pod recorded (a state the hub lost): this server's pod, found by its labels
            found = self._find_in_cache(pods)
            if found is None:
                return 0
            self.pod_name, self.pod_uid = name_of(found), _uid(found)
            self.log.info("Adopted the pod %s of %s by its labels", self.pod_name, self.log_name)
        pod = pods.get(self.pod_name)
        if pod is None:
            return 0
        if self.pod_uid and _uid(pod) not in ("", self.pod_uid):
            return 0  # another pod of the same name: ours is gone
        return podstatus.exit_status(pod)

    def _find_in_cache(self, pods: Informer) -> Json | None:
        labels = server_labels(self.server_names())
        for pod in pods.items.values():
            found = (pod.get("metadata") or {}).get("labels") or {}
            if all(found.get(k) == v for k, v in labels.items()) and self._is_ours(pod):
                return pod
        return None

    # --- stop ----------------------------------------------------------------------------

    async def stop(self, now: bool = False) -> None:
        connection = await self._connection()
        namespace = self.effective_namespace()
        pods, _ = self._informers(connection, namespace)
        names = [self.pod_name] if self.pod_name else await self._find_pods(connection, namespace)
        grace = 0 if now else self.delete_grace_period
        # only the pod this spawner started: a newer one of the same name is not ours to end
        uid = self.pod_uid if self.pod_name else ""
        gone = []
        for name in names:
            if not await self._delete(
                "the pod", connection.core.delete_namespaced_pod, name, namespace, grace, uid
            ):
                gone.append(name)
        names = [name for name in names if name not in gone]
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
        self,
        what: str,
        operation: Any,
        name: str,
        namespace: str,
        grace: int | None,
        uid: str = "",
    ) -> bool:
        """Delete `name`; False when it was already gone (404), or when `uid` is given and
        the object of that name is another one (409)."""
        options: dict[str, Any] = {}
        if grace is not None:
            options["grace_period_seconds"] = grace
        if uid:
            options["body"] = {"preconditions": {"uid": uid}}
        try:
            await self._retrying(f"deleting {what}", operation, name, namespace, **options)
        except KubeError as e:
            if e.status == 404 or (uid and e.status == 409):
                return False
            raise SpawnError(f"{what} {name} could not be deleted: {e.message}") from None
        return True

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
        """The server is deleted for good: its volume goes when delete_pvc_with_user says
        so and the volume is its own (the user's volume, for the default server when the
        user is deleted; a named server's own one with storage_per_server). A named server
        sharing the user's volume leaves it to the user's deletion."""
        if not self.delete_pvc_with_user or not self.storage_capacity:
            return
        if self.server_name and self.server_names().claim == names_for(self.user_name).claim:
            return
        connection = await self._connection()
        claim = self.server_names().claim
        await self._delete(
            "the server's volume",
            connection.core.delete_namespaced_persistent_volume_claim,
            claim,
            self.effective_namespace(),
            None,
        )
        self.pvc_name = ""


def name_of(obj: Json) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _uid(obj: Json) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")

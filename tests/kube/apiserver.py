"""A fake Kubernetes API server (core/v1) over real HTTP, for the Kubernetes tests.

No kube-apiserver can be installed here, so the spawner and informer tests
talk to this tornado server through the real client (kubernetes_asyncio).
It keeps what a spawner relies on:

- core/v1 pods, persistentvolumeclaims, services, events, secrets, configmaps
  and serviceaccounts under `/api/v1/namespaces/{ns}/{plural}[/{name}[/status]]`,
  plus the all-namespaces lists `/api/v1/{plural}`; namespaces exist implicitly.
- Errors are Status objects (`kind: Status`, `reason`, `code`): 404 NotFound,
  409 AlreadyExists / Conflict (stale resourceVersion on PUT/PATCH), 422
  Invalid, 400 BadRequest, 401 Unauthorized (when a bearer token is set), 403
  Forbidden "exceeded quota" (when `pod_quota` pods exist), 410 Expired.
- A global resourceVersion counter; list with labelSelector, fieldSelector,
  limit and continue; watch with resourceVersion (replayed from a bounded
  history; older than the history -> an ERROR event with a 410 Status, as the
  real server does), allowWatchBookmarks, timeoutSeconds.
- Graceful pod deletion: a scheduled pod gets deletionTimestamp (MODIFIED) and
  is removed (DELETED) by the kubelet once its process stopped
  (`tests.kube.kubelet`); unscheduled or finished pods go at once.
- Mutating admission: `admission` callables may change an object being created
  (the simulated service proxy gives a Service its listening address this way).

Test hooks: `drop_watches()`, `compact()` (every older resourceVersion is then
410), `send_bookmarks()`, `inject(method, path_regex, status=500, delay=0,
times=1, watch=None)` for failures and slow answers (watch=True: only
watches), and `requests` (every call made, to count API calls). Storage and
watch history live in `tests.kube.store`.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import logging
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from tornado.httpserver import HTTPServer
from tornado.iostream import StreamClosedError
from tornado.web import Application, RequestHandler

from tests.kube.selectors import Match, parse_field_selector, parse_label_selector
from tests.kube.store import KINDS, ApiError, Obj, Store, WatchEvent, expired
from tests.kube.validation import Invalid, check_labels, prepare_create

log = logging.getLogger("tests.kube.apiserver")

NAME = r"[^/]+"
PLURALS = "|".join(KINDS)


@dataclass
class Fault:
    """An injected failure: matching requests get `status` (after `delay` seconds)."""

    method: str
    path: re.Pattern[str]
    status: int | None = 500
    delay: float = 0.0
    times: int | None = 1  # None: every matching request
    watch: bool | None = None  # True: only watches, False: only other requests
    hits: int = 0

    def matches(self, method: str, path: str, watch: bool) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.watch is not None and self.watch != watch:
            return False
        return self.method in ("*", method) and bool(self.path.search(path))


@dataclass
class RequestRecord:
    method: str
    path: str
    query: str
    watch: bool


@dataclass
class FakeApiServer:
    """The fake API server; `await start()`, then `url`; `await stop()`."""

    token: str | None = None
    pod_quota: int | None = None
    history_size: int = 1000
    bookmark_interval: float = 5.0
    store: Store = field(init=False)
    faults: list[Fault] = field(default_factory=list)
    requests: list[RequestRecord] = field(default_factory=list)
    # mutating admission: called with (plural, namespace, object) on each create that is
    # stored (not dry runs), after validation and defaults; may change the object
    admission: list[Callable[[str, str, Obj], None]] = field(default_factory=list)
    port: int = 0
    # set by the kubelet: (namespace, pod, container) -> the container's log text
    log_reader: Any = None
    _server: HTTPServer | None = None

    def __post_init__(self) -> None:
        self.store = Store(self.history_size)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._server = HTTPServer(make_app(self))
        self._server.add_sockets([sock])

    async def stop(self) -> None:
        self.store.drop_watchers()
        if self._server is not None:
            self._server.stop()
            await asyncio.sleep(0)
            await self._server.close_all_connections()
            self._server = None

    # -- test hooks --------------------------------------------------------

    def inject(
        self,
        method: str,
        path: str,
        status: int | None = 500,
        delay: float = 0.0,
        times: int | None = 1,
        watch: bool | None = None,
    ) -> Fault:
        """Make the next `times` requests matching METHOD and the `path` regex fail/slow.

        `status=None` with a delay only slows the request down; `watch=True` picks
        only watch requests, `watch=False` only the others (lists, gets, writes).
        """
        fault = Fault(method.upper(), re.compile(path), status, delay, times, watch)
        self.faults.append(fault)
        return fault

    def drop_watches(self) -> int:
        """Cut every open watch connection mid-stream (as an apiserver restart does)."""
        return self.store.drop_watchers()

    def compact(self) -> None:
        """Compact history: a watch or continue from any older resourceVersion gets 410."""
        self.store.compact()

    def send_bookmarks(self) -> None:
        """Send a BOOKMARK now on every watch that asked for them."""
        self.store.bookmark_watchers()

    def calls(self, method: str | None = None, path: str = "") -> list[RequestRecord]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and re.search(path, r.path)
        ]


def flag(value: str) -> bool:
    """A boolean query parameter: the Go server takes true/True/1."""
    return value.lower() in ("true", "1")


def status_body(status: str = "Success", **extra: Any) -> Obj:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": status, **extra}


class Base(RequestHandler):
    fake: FakeApiServer

    def initialize(self, fake: FakeApiServer) -> None:
        self.fake = fake

    def check_xsrf_cookie(self) -> None:
        pass

    async def prepare(self) -> None:
        fake = self.fake
        path = self.request.path
        watching = flag(self.get_query_argument("watch", "")) or "/watch/" in path
        fake.requests.append(
            RequestRecord(self.request.method or "", path, self.request.query, watching)
        )
        if fake.token is not None:
            header = self.request.headers.get("Authorization", "")
            if header != f"Bearer {fake.token}":
                self.send_status(ApiError(401, "Unauthorized", "Unauthorized"))
                return
        for fault in fake.faults:
            if fault.matches(self.request.method or "", path, watching):
                fault.hits += 1
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.status is not None:
                    self.send_status(injected(fault.status))
                    return
                break

    def send_json(self, obj: Any, code: int = 200) -> None:
        self.set_status(code)
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(obj))

    def send_status(self, error: ApiError) -> None:
        self.send_json(error.status(), error.code)

    def body_json(self) -> Any:
        if not self.request.body:
            return None
        try:
            return orjson.loads(self.request.body)
        except orjson.JSONDecodeError as e:
            raise ApiError(
                400, "BadRequest", f"the body of the request could not be decoded: {e}"
            ) from e

    def plural_of(self, plural: str) -> str:
        if plural not in KINDS:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return plural

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = (
            "NotFound"
            if status_code == 404
            else "MethodNotAllowed"
            if status_code == 405
            else "InternalError"
        )
        self.send_json(
            status_body("Failure", message=self._reason, reason=reason, code=status_code),
            status_code,
        )


def injected(code: int) -> ApiError:
    reasons = {
        500: ("InternalError", "Internal error occurred: injected failure"),
        503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
        429: (
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
        ),
        504: ("Timeout", "the server was unable to return a response in the time allotted"),
        403: ("Forbidden", "forbidden: injected failure"),
        410: ("Expired", "too old resource version"),
    }
    reason, message = reasons.get(code, ("InternalError", f"injected failure {code}"))
    return ApiError(code, reason, message)


def handle_errors(method: Any) -> Any:
    async def wrapper(self: Base, *args: str) -> None:
        try:
            await method(self, *args)
        except ApiError as e:
            if not self._finished:
                self.send_status(e)

    return wrapper


class WatchMixin(Base):
    """list and watch for one kind, in one namespace or all."""

    async def list_or_watch(self, plural: str, namespace: str | None) -> None:
        labels = parse_label_selector(self.get_query_argument("labelSelector", None))
        fields = parse_field_selector(plural, self.get_query_argument("fieldSelector", None))

        def matches(obj: Obj) -> bool:
            if namespace is not None and obj["metadata"].get("namespace") != namespace:
                return False
            return labels(obj) and fields(obj)

        if flag(self.get_query_argument("watch", "")) or "/watch/" in self.request.path:
            await self.watch(plural, matches)
        else:
            self.list(plural, namespace, matches)

    def list(self, plural: str, namespace: str | None, matches: Match) -> None:
        store = self.fake.store
        limit = int(self.get_query_argument("limit", "0") or 0)
        token = self.get_query_argument("continue", None)
        start_after: list[str] | None = None
        list_rv = store.rv
        if token:
            try:
                state = orjson.loads(base64.urlsafe_b64decode(token))
                list_rv, start_after = int(state["rv"]), list(state["start"])
            except (ValueError, KeyError, TypeError) as e:
                raise ApiError(400, "BadRequest", "continue key is not valid") from e
            window = max(k.window_start for k in store.kinds.values())
            if list_rv < window:
                raise ApiError(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter, or use "
                    "the continue token in this response to retrieve the remainder of the "
                    "results. Continuing with the provided token results in an inconsistent "
                    "list - objects that were created, modified, or deleted between the time "
                    "the first chunk was returned and now may show up in the list.",
                )
        # filtered and paged on the stored objects; only the page is copied
        items = [o for o in store.stored(plural, namespace) if matches(o)]
        if start_after is not None:
            items = [
                o
                for o in items
                if [o["metadata"]["namespace"], o["metadata"]["name"]] > start_after
            ]
        meta: Obj = {"resourceVersion": str(list_rv)}
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            meta["continue"] = base64.urlsafe_b64encode(
                orjson.dumps({"rv": list_rv, "start": [last["namespace"], last["name"]]})
            ).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        items = [copy.deepcopy(item) for item in items]
        for item in items:
            item.pop("kind", None)
            item.pop("apiVersion", None)
        kind = KINDS[plural][0]
        self.send_json(
            {"kind": f"{kind}List", "apiVersion": "v1", "metadata": meta, "items": items}
        )

    async def watch(self, plural: str, matches: Match) -> None:
        store = self.fake.store
        rv_arg = self.get_query_argument("resourceVersion", "") or "0"
        timeout = self.get_query_argument("timeoutSeconds", None)
        bookmarks = flag(self.get_query_argument("allowWatchBookmarks", ""))
        kind = KINDS[plural][0]
        watcher = store.add_watcher(plural)
        self._watcher = watcher
        try:
            self.set_header("Content-Type", "application/json")
            await self.flush()  # the headers go out at once, as the real server's do
            try:
                if rv_arg == "0":
                    initial = [
                        WatchEvent("ADDED", store.rv, obj)
                        for obj in store.items(plural)
                        if matches(obj)
                    ]
                else:
                    try:
                        since = int(rv_arg)
                    except ValueError as e:
                        raise ApiError(
                            400, "BadRequest", f'invalid resource version: "{rv_arg}"'
                        ) from e
                    initial = store.events_since(plural, since)
            except ApiError as e:
                if e.code != 410:
                    raise
                # the real server answers 200 and sends the 410 as an ERROR event
                await self.send_event({"type": "ERROR", "object": e.status()})
                return
            for event in initial:
                await self.send_watch_event(event, matches)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + float(timeout) if timeout else None
            while True:
                wait = self.fake.bookmark_interval if bookmarks else None
                if deadline is not None:
                    left = deadline - loop.time()
                    if left <= 0:
                        if bookmarks:
                            await self.send_bookmark(kind)
                        return
                    wait = min(wait, left) if wait is not None else left
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), wait)
                except TimeoutError:
                    if bookmarks and (deadline is None or deadline - loop.time() > 0):
                        await self.send_bookmark(kind)
                    continue
                if item is None:
                    self.abort_stream()
                    return
                if item == "BOOKMARK":
                    if bookmarks:
                        await self.send_bookmark(kind)
                    continue
                assert isinstance(item, WatchEvent)
                await self.send_watch_event(item, matches)
        except StreamClosedError:
            return
        finally:
            store.remove_watcher(watcher)
        if not self._finished:
            self.finish()

    def abort_stream(self) -> None:
        """Close the connection without ending the chunked body: a dropped watch."""
        connection = self.request.connection
        stream = getattr(connection, "stream", None)
        if stream is not None:
            stream.close()
        self._finished = True

    def on_connection_close(self) -> None:
        watcher = getattr(self, "_watcher", None)
        if watcher is not None:
            watcher.queue.put_nowait(None)

    async def send_watch_event(self, event: WatchEvent, matches: Match) -> None:
        now = matches(event.obj)
        before = event.old is not None and matches(event.old)
        if event.type == "MODIFIED":
            if now and not before:
                kind = "ADDED"
            elif before and not now:
                kind = "DELETED"
            elif now:
                kind = "MODIFIED"
            else:
                return
        elif now:
            kind = event.type
        else:
            return
        await self.send_event({"type": kind, "object": event.obj})

    async def send_bookmark(self, kind: str) -> None:
        await self.send_event(
            {
                "type": "BOOKMARK",
                "object": {
                    "kind": kind,
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": str(self.fake.store.rv)},
                },
            }
        )

    async def send_event(self, event: Obj) -> None:
        self.write(orjson.dumps(event) + b"\n")
        await self.flush()


class CollectionHandler(WatchMixin):
    @handle_errors
    async def get(self, namespace: str, plural: str) -> None:
        await self.list_or_watch(self.plural_of(plural), namespace)

    @handle_errors
    async def post(self, namespace: str, plural: str) -> None:
        plural = self.plural_of(plural)
        obj = prepare_create(plural, namespace, self.body_json())
        if plural == "pods":
            self.check_quota(namespace, obj["metadata"]["name"])
        if self.get_query_argument("dryRun", None):
            self.send_json(obj, 201)
            return
        for admit in self.fake.admission:
            admit(plural, namespace, obj)
        self.send_json(self.fake.store.create(plural, namespace, obj), 201)

    def check_quota(self, namespace: str, name: str) -> None:
        quota = self.fake.pod_quota
        if quota is None:
            return
        used = sum(
            1
            for pod in self.fake.store.items("pods", namespace)
            if pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")
        )
        if used >= quota:
            raise ApiError(
                403,
                "Forbidden",
                f'pods "{name}" is forbidden: exceeded quota: atrium-quota, requested: pods=1, '
                f"used: pods={used}, limited: pods={quota}",
                {"name": name, "kind": "pods"},
            )


class AllNamespacesHandler(WatchMixin):
    @handle_errors
    async def get(self, plural: str) -> None:
        await self.list_or_watch(self.plural_of(plural), None)


class ObjectHandler(Base):
    @handle_errors
    async def get(self, namespace: str, plural: str, name: str, sub: str | None = None) -> None:
        self.send_json(self.fake.store.get(self.plural_of(plural), namespace, name))

    @handle_errors
    async def put(self, namespace: str, plural: str, name: str, sub: str | None = None) -> None:
        plural = self.plural_of(plural)
        body = self.body_json()
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
        meta = body.get("metadata") or {}
        if meta.get("name") != name:
            raise ApiError(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        errors = Invalid(plural, name)
        check_labels(meta, errors)
        errors.check()
        self.send_json(self.apply(plural, namespace, name, sub, body, meta.get("resourceVersion")))

    @handle_errors
    async def patch(self, namespace: str, plural: str, name: str, sub: str | None = None) -> None:
        plural = self.plural_of(plural)
        patch = self.body_json()
        content_type = self.request.headers.get("Content-Type", "").split(";")[0]
        current = self.fake.store.get(plural, namespace, name)
        if content_type == "application/json-patch+json":
            if not isinstance(patch, list):
                raise ApiError(400, "BadRequest", "json patch must be a list of operations")
            new = json_patch(current, patch)
        elif content_type in (
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ):
            if not isinstance(patch, dict):
                raise ApiError(400, "BadRequest", "merge patch must be an object")
            strategic = content_type == "application/strategic-merge-patch+json"
            new = merge_patch(current, patch, strategic)
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format: {content_type}",
            )
        errors = Invalid(plural, name)
        check_labels(new.get("metadata") or {}, errors)
        errors.check()
        expect = ((patch if isinstance(patch, dict) else {}).get("metadata") or {}).get(
            "resourceVersion"
        )
        self.send_json(self.apply(plural, namespace, name, sub, new, expect))

    def apply(
        self, plural: str, namespace: str, name: str, sub: str | None, body: Obj, expect: str | None
    ) -> Obj:
        def change(obj: Obj) -> None:
            if sub == "status":
                obj["status"] = body.get("status", {})
                return
            if plural == "pods" and mutable_view(obj.get("spec")) != mutable_view(body.get("spec")):
                raise ApiError(
                    422,
                    "Invalid",
                    f'Pod "{name}" is invalid: spec: Forbidden: {POD_UPDATE_FORBIDDEN}',
                    {
                        "name": name,
                        "kind": "Pod",
                        "causes": [
                            {
                                "reason": "FieldValueForbidden",
                                "message": f"Forbidden: {POD_UPDATE_FORBIDDEN}",
                                "field": "spec",
                            }
                        ],
                    },
                )
            status = obj.get("status")
            obj.clear()
            obj.update(copy.deepcopy(body))
            if plural in ("pods", "services", "persistentvolumeclaims"):
                # the status is a subresource: a write to the object keeps it
                if status is not None:
                    obj["status"] = status
                else:
                    obj.pop("status", None)

        return self.fake.store.update(plural, namespace, name, change, expect)

    @handle_errors
    async def delete(self, namespace: str, plural: str, name: str, sub: str | None = None) -> None:
        plural = self.plural_of(plural)
        store = self.fake.store
        options = self.body_json() or {}
        current = store.get(plural, namespace, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != current["metadata"]["uid"]:
            raise ApiError(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {pre['uid']}, "
                f"UID in object meta: {current['metadata']['uid']}",
            )
        if (
            pre.get("resourceVersion")
            and pre["resourceVersion"] != current["metadata"]["resourceVersion"]
        ):
            raise ApiError(
                409,
                "Conflict",
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {current['metadata']['resourceVersion']}",
            )
        grace_arg = self.get_query_argument("gracePeriodSeconds", None)
        grace = options.get("gracePeriodSeconds", int(grace_arg) if grace_arg else None)
        if plural != "pods":
            self.send_json(store.remove(plural, namespace, name))
            return
        if grace is None:
            grace = current["spec"].get("terminationGracePeriodSeconds", 30)
        phase = current.get("status", {}).get("phase")
        if grace <= 0 or not current["spec"].get("nodeName") or phase in ("Succeeded", "Failed"):
            self.send_json(store.remove(plural, namespace, name))
            return
        self.send_json(store.mark_deleting(plural, namespace, name, grace))


class LogHandler(Base):
    @handle_errors
    async def get(self, namespace: str, name: str) -> None:
        pod = self.fake.store.get("pods", namespace, name)
        container = (
            self.get_query_argument("container", None) or pod["spec"]["containers"][0]["name"]
        )
        text = self.fake.log_reader(namespace, name, container) if self.fake.log_reader else None
        if text is None:
            raise ApiError(
                400,
                "BadRequest",
                f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating',
            )
        self.set_header("Content-Type", "text/plain")
        self.finish(text)


class NamespaceHandler(Base):
    """Namespaces exist implicitly: every name is an Active namespace."""

    async def get(self, name: str) -> None:
        self.send_json(
            {
                "kind": "Namespace",
                "apiVersion": "v1",
                "metadata": {"name": name, "resourceVersion": "1"},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
        )


class VersionHandler(Base):
    async def get(self) -> None:
        self.send_json(
            {
                "major": "1",
                "minor": "31",
                "gitVersion": "v1.31.0-atrium-fake",
                "platform": "linux/amd64",
            }
        )


POD_UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def mutable_view(spec: Any) -> Any:
    """A pod spec without the fields an update may change: the rest must stay the same."""
    if not isinstance(spec, dict):
        return spec
    view = {
        k: v
        for k, v in spec.items()
        if k not in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")
    }
    for group in ("containers", "initContainers"):
        if isinstance(view.get(group), list):
            view[group] = [
                {k: v for k, v in c.items() if k != "image"} if isinstance(c, dict) else c
                for c in view[group]
            ]
    return view


def json_patch(obj: Obj, ops: list[Any]) -> Obj:
    """RFC 6902 add/replace/remove/test on a copy of `obj`."""
    doc = copy.deepcopy(obj)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent: Any = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = parts[-1]
        kind = op["op"]
        try:
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(index, op["value"])
                elif kind == "replace":
                    parent[index] = op["value"]
                elif kind == "remove":
                    del parent[index]
            elif kind in ("add", "replace"):
                if kind == "replace" and last not in parent:
                    raise KeyError(last)
                parent[last] = op["value"]
            elif kind == "remove":
                del parent[last]
            elif kind == "test" and parent.get(last) != op["value"]:
                raise ApiError(
                    422, "Invalid", f"the server rejected our request: test failed at {op['path']}"
                )
        except (KeyError, IndexError, ValueError) as e:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: {op['path']}",
            ) from e
    return doc


# strategic merge: lists of these fields are merged by the element's key, others replaced
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "conditions": "type",
}


def merge_patch(target: Any, patch: Any, strategic: bool = False) -> Any:
    """RFC 7386 merge patch; with `strategic`, keyed lists merge element by element."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        merge_key = MERGE_KEYS.get(key) if strategic else None
        if value is None:
            result.pop(key, None)
        elif merge_key and isinstance(value, list) and isinstance(result.get(key), list):
            merged = list(result[key])
            for item in value:
                index = next(
                    (
                        i
                        for i, old in enumerate(merged)
                        if isinstance(old, dict)
                        and isinstance(item, dict)
                        and old.get(merge_key) == item.get(merge_key)
                    ),
                    None,
                )
                if index is None:
                    merged.append(copy.deepcopy(item))
                else:
                    merged[index] = merge_patch(merged[index], item, strategic)
            result[key] = merged
        else:
            result[key] = merge_patch(result.get(key), value, strategic)
    return result


def make_app(fake: FakeApiServer) -> Application:
    args = {"fake": fake}
    ns = rf"/api/v1/namespaces/({NAME})"
    return Application(
        [
            (rf"{ns}/pods/({NAME})/log", LogHandler, args),
            (rf"{ns}/({PLURALS})/({NAME})(?:/(status))?", ObjectHandler, args),
            (rf"{ns}/({PLURALS})", CollectionHandler, args),
            (rf"/api/v1/watch/namespaces/({NAME})/({PLURALS})", CollectionHandler, args),
            (rf"/api/v1/watch/({PLURALS})", AllNamespacesHandler, args),
            (rf"/api/v1/({PLURALS})", AllNamespacesHandler, args),
            (ns, NamespaceHandler, args),
            (r"/version/?", VersionHandler, args),
        ],
        log_function=lambda handler: None,
    )


__all__ = ["ApiError", "FakeApiServer", "Fault", "expired"]

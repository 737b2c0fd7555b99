"""What the fake API server checks and fills in on create/update (per kind).

Validation errors are 422 Invalid Status objects with `details.causes`, in
the real server's words ("a lowercase RFC 1123 subdomain must consist of
..."). Defaults are the ones a spawner sees back: a Pod starts Pending with
restartPolicy Always and terminationGracePeriodSeconds 30, a Service gets a
clusterIP, a PVC is Bound at once (an immediate-binding storage class), a
Secret's stringData is folded into base64 data.
"""

from __future__ import annotations

import base64
import random
import re
import string
from typing import Any

from tests.kube.store import KINDS, ApiError, Obj, now_iso

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character "
    "(e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


class Invalid:
    """Collects field errors; raises one 422 with all of them."""

    def __init__(self, plural: str, name: str) -> None:
        self.kind = KINDS[plural][0]
        self.name = name
        self.causes: list[dict[str, str]] = []

    def required(self, field: str, detail: str = "") -> None:
        message = "Required value" + (f": {detail}" if detail else "")
        self.causes.append({"reason": "FieldValueRequired", "message": message, "field": field})

    def invalid(self, field: str, value: Any, detail: str) -> None:
        message = f'Invalid value: "{value}": {detail}'
        self.causes.append({"reason": "FieldValueInvalid", "message": message, "field": field})

    def check(self) -> None:
        if not self.causes:
            return
        text = ", ".join(f"{c['field']}: {c['message']}" for c in self.causes)
        if len(self.causes) > 1:
            text = f"[{text}]"
        raise ApiError(
            422,
            "Invalid",
            f'{self.kind} "{self.name}" is invalid: {text}',
            {"name": self.name, "kind": self.kind, "causes": self.causes},
        )


def _random_suffix() -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=5))


def check_name(plural: str, name: str, errors: Invalid, field: str = "metadata.name") -> None:
    if plural == "services":
        ok, message = bool(DNS1035_LABEL.match(name)) and len(name) <= 63, DNS1035_MSG
    else:
        ok, message = bool(DNS1123_SUBDOMAIN.match(name)) and len(name) <= 253, SUBDOMAIN_MSG
    if not ok:
        errors.invalid(field, name, message)


def prepare_create(plural: str, namespace: str, obj: Any) -> Obj:
    """Validate a new object and fill in its name (generateName) and defaults."""
    if not isinstance(obj, dict):
        raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if not isinstance(meta, dict):
        raise ApiError(400, "BadRequest", "metadata must be an object")
    body_ns = meta.get("namespace")
    if body_ns and body_ns != namespace:
        raise ApiError(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        )
    kind = KINDS[plural][0]
    if obj.get("kind") not in (None, kind):
        raise ApiError(
            400, "BadRequest", f"the object provided is unrecognized (wrong kind {obj['kind']!r})"
        )
    name = meta.get("name") or ""
    errors = Invalid(plural, name)
    if not name and meta.get("generateName"):
        name = meta["name"] = f"{meta['generateName']}{_random_suffix()}"
        errors.name = name
    if not name:
        errors.required("metadata.name", "name or generateName is required")
    else:
        check_name(plural, name, errors)
    check_labels(meta, errors)
    check_spec(plural, obj, errors)
    errors.check()
    apply_defaults(plural, obj)
    return obj


def check_labels(meta: Obj, errors: Invalid) -> None:
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        errors.invalid("metadata.labels", labels, "must be a map")
        return
    for key, value in labels.items():
        if (
            not isinstance(value, str)
            or (value and not re.match(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$", value))
            or len(value) > 63
        ):
            errors.invalid(
                "metadata.labels",
                value,
                "a valid label must be an empty string or consist of alphanumeric characters, "
                "'-', '_' or '.', and must start and end with an alphanumeric character",
            )
        if len(key.split("/")[-1]) > 63:
            errors.invalid("metadata.labels", key, "name part must be no more than 63 characters")


def check_spec(plural: str, obj: Obj, errors: Invalid) -> None:
    if plural == "pods":
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            errors.required("spec")
            return
        containers = spec.get("containers")
        if not containers:
            errors.required("spec.containers")
            return
        seen: set[str] = set()
        for group in ("initContainers", "containers"):
            for i, container in enumerate(spec.get(group) or []):
                path = f"spec.{group}[{i}]"
                cname = container.get("name") if isinstance(container, dict) else None
                if not cname:
                    errors.required(f"{path}.name")
                elif not DNS1123_LABEL.match(cname) or len(cname) > 63:
                    errors.invalid(f"{path}.name", cname, LABEL_MSG)
                elif cname in seen:
                    errors.causes.append(
                        {
                            "reason": "FieldValueDuplicate",
                            "message": f'Duplicate value: "{cname}"',
                            "field": f"{path}.name",
                        }
                    )
                else:
                    seen.add(cname)
                if isinstance(container, dict) and not container.get("image"):
                    errors.required(f"{path}.image")
        policy = spec.get("restartPolicy", "Always")
        if policy not in ("Always", "OnFailure", "Never"):
            errors.invalid(
                "spec.restartPolicy", policy, "supported values: Always, OnFailure, Never"
            )
    elif plural == "services":
        for i, port in enumerate((obj.get("spec") or {}).get("ports") or []):
            if not isinstance(port.get("port"), int) or not 0 < port["port"] < 65536:
                errors.invalid(
                    f"spec.ports[{i}].port", port.get("port"), "must be between 1 and 65535"
                )
    elif plural == "persistentvolumeclaims":
        spec = obj.get("spec") or {}
        if not spec.get("accessModes"):
            errors.required("spec.accessModes", "at least 1 access mode is required")
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        if not storage:
            errors.required("spec.resources[storage]")
    elif plural == "events" and not obj.get("involvedObject"):
        errors.required("involvedObject")


def apply_defaults(plural: str, obj: Obj) -> None:
    if plural == "pods":
        spec = obj["spec"]
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("serviceAccountName", "default")
        for container in spec["containers"]:
            container.setdefault("imagePullPolicy", _pull_policy(container["image"]))
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("resources", {})
        obj["status"] = {"phase": "Pending", "qosClass": _qos(spec)}
    elif plural == "services":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        if spec.get("clusterIP") != "None":
            spec["clusterIP"] = f"10.96.{random.randint(0, 255)}.{random.randint(1, 254)}"
            spec["clusterIPs"] = [spec["clusterIP"]]
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port["port"])
        obj["status"] = {"loadBalancer": {}}
    elif plural == "persistentvolumeclaims":
        spec = obj["spec"]
        spec.setdefault("volumeMode", "Filesystem")
        spec.setdefault("storageClassName", "standard")
        spec["volumeName"] = f"pvc-{obj['metadata']['name']}"
        obj["status"] = {
            "phase": "Bound",
            "accessModes": spec["accessModes"],
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
        }
    elif plural == "secrets":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
    elif plural == "events":
        stamp = now_iso()
        obj.setdefault("firstTimestamp", stamp)
        obj.setdefault("lastTimestamp", stamp)
        obj.setdefault("count", 1)
        obj.setdefault("type", "Normal")
        obj.setdefault("source", {})
        obj.setdefault("reportingComponent", obj["source"].get("component", ""))


def _pull_policy(image: str) -> str:
    return (
        "Always"
        if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        else "IfNotPresent"
    )


def _qos(spec: Obj) -> str:
    resources = [c.get("resources") or {} for c in spec["containers"]]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    if all(r.get("limits") and r.get("requests", r["limits"]) == r["limits"] for r in resources):
        return "Guaranteed"
    return "Burstable"

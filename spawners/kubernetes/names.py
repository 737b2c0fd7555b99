"""Kubernetes names for a user's server: pod, volume claim, service and labels.

Hub user and server names may hold anything (capitals, dots, `@`, non-ASCII
letters); Kubernetes names are DNS-1123 labels: lowercase letters, digits and
`-`, starting and ending with an alphanumeric, at most 63 characters.

`slug(name)` keeps a name that already is a short, clean label as it is
(`alice`, `lab-2`) and turns any other into `<readable part>--<hash>`, the
readable part from the lowercased (punycode for non-ASCII) name and the hash
from the exact original name. A clean slug never holds `--`; an escaped one
holds it exactly once and ends with the hash, so no clean name can pose as an
escaped one, and two names share an escaped slug only if their hashes collide.

A server's slug joins the user's and the server's with `---`, a run that no
slug holds, begins or ends with, so `ab` + `c-d` and `ab-c` + `d` stay apart,
and the default server (no separator at all) never meets a named one.

The names a server got are kept in the spawner's state (`spawners.kubernetes.
spawner`): a later change of these rules never orphans a running pod or a
user's volume.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

PREFIX = "atrium"
CLAIM_PREFIX = "claim"
MAX_NAME = 63
# a slug is at most this long: PREFIX + '-' + slug + '---' + slug stays within MAX_NAME
MAX_SLUG = 26
HASH_LENGTH = 10
_CLEAN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
SEPARATOR = "---"

# labels that name the server a pod, claim or service belongs to
LABEL_USER = "hub.jupyter.org/username"
LABEL_SERVER = "hub.jupyter.org/servername"
LABEL_COMPONENT = "component"
LABEL_APP = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART = "app.kubernetes.io/component"
APP = "atrium"
COMPONENT = "singleuser-server"
# annotations keep the exact names, which labels cannot hold
ANNOTATION_USER = "hub.jupyter.org/username"
ANNOTATION_SERVER = "hub.jupyter.org/servername"


def _hash(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_LENGTH]


def _readable(name: str) -> str:
    """A lowercase ASCII rendering of `name` (punycode for non-ASCII letters)."""
    lowered = name.lower()
    if not lowered.isascii():
        try:
            lowered = lowered.encode("punycode").decode("ascii")
        except UnicodeError:
            lowered = lowered.encode("ascii", "replace").decode("ascii")
    return _NOT_ALNUM.sub("-", lowered).strip("-")


def is_clean(name: str) -> bool:
    """Is `name` kept as its own slug?"""
    return len(name) <= MAX_SLUG and _CLEAN.fullmatch(name) is not None


def slug(name: str) -> str:
    """A DNS-1123 label of at most MAX_SLUG characters standing for `name` alone."""
    if is_clean(name):
        return name
    room = MAX_SLUG - HASH_LENGTH - 2
    readable = _readable(name)[:room].strip("-")
    # a readable part never holds '--' (runs are collapsed) nor ends with '-'
    readable = re.sub("-+", "-", readable) or "x"
    return f"{readable}--{_hash(name)}"


def server_slug(user_name: str, server_name: str = "") -> str:
    """The slug of one server: the user's, plus `---` and the server's for named ones."""
    user = slug(user_name)
    return f"{user}{SEPARATOR}{slug(server_name)}" if server_name else user


@dataclass(frozen=True)
class ServerNames:
    """The Kubernetes names of one server's objects."""

    pod: str
    claim: str
    service: str
    user_label: str
    server_label: str

    def state(self) -> dict[str, str]:
        return {
            "pod_name": self.pod,
            "pvc_name": self.claim,
            "service_name": self.service,
            "user_label": self.user_label,
            "server_label": self.server_label,
        }


def names_for(user_name: str, server_name: str = "", claim_per_server: bool = False) -> ServerNames:
    """Names under the current rules. `claim_per_server`: a named server gets its own
    volume claim; otherwise all of a user's servers share the user's."""
    pod = f"{PREFIX}-{server_slug(user_name, server_name)}"
    claim_of = server_slug(user_name, server_name if claim_per_server else "")
    names = ServerNames(
        pod=pod,
        claim=f"{CLAIM_PREFIX}-{claim_of}",
        service=pod,
        user_label=slug(user_name),
        server_label=slug(server_name) if server_name else "",
    )
    assert len(names.pod) <= MAX_NAME
    assert len(names.claim) <= MAX_NAME
    return names


def is_dns_label(value: str) -> bool:
    """A valid DNS-1123 label (what pod, claim and service names must be here)."""
    return len(value) <= MAX_NAME and _CLEAN_LABEL.fullmatch(value) is not None


_CLEAN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


def server_labels(names: ServerNames) -> dict[str, str]:
    """The labels that find one server's pod (adoption) and that NetworkPolicies select."""
    return {
        LABEL_APP: APP,
        LABEL_PART: COMPONENT,
        LABEL_MANAGED_BY: "atrium-hub",
        LABEL_COMPONENT: COMPONENT,
        LABEL_USER: names.user_label,
        LABEL_SERVER: names.server_label,
    }


def label_selector(labels: dict[str, str]) -> str:
    """`key=value,...` as the API's labelSelector takes it."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))

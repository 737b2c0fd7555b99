"""Label and field selectors, parsed and matched as the API server does.

Label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a`,
`!a`, comma-separated (all must hold). Field selectors: `f=v`, `f==v`, `f!=v`
over the fields each kind supports (anything else is a 400 BadRequest, like
the real server's "field label not supported").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.kube.store import ApiError, Obj

Match = Callable[[Obj], bool]

COMMON_FIELDS = ("metadata.name", "metadata.namespace")
FIELDS: dict[str, tuple[str, ...]] = {
    "pods": (
        *COMMON_FIELDS,
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "events": (
        *COMMON_FIELDS,
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "secrets": (*COMMON_FIELDS, "type"),
}

_SET_EXPR = re.compile(r"^\s*([^\s!=,()]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


def _bad(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside a set's parentheses."""
    terms, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term.strip() for term in terms if term.strip()]


def _check_key(key: str, selector: str) -> str:
    if not _LABEL_KEY.match(key):
        raise _bad(f"unable to parse requirement: invalid label key {key!r} in {selector!r}")
    return key


def parse_label_selector(selector: str | None) -> Match:
    if not selector:
        return lambda obj: True
    checks: list[Match] = []
    for term in _split_terms(selector):
        if m := _SET_EXPR.match(term):
            key = _check_key(m.group(1), selector)
            values = {v.strip() for v in m.group(3).split(",") if v.strip()}
            if m.group(2) == "in":
                checks.append(lambda o, k=key, vs=values: _labels(o).get(k) in vs)
            else:
                checks.append(lambda o, k=key, vs=values: _labels(o).get(k) not in vs)
        elif "!=" in term:
            key, value = (part.strip() for part in term.split("!=", 1))
            _check_key(key, selector)
            checks.append(lambda o, k=key, v=value: _labels(o).get(k) != v)
        elif "=" in term:
            key, value = (part.strip() for part in term.split("==" if "==" in term else "=", 1))
            _check_key(key, selector)
            checks.append(lambda o, k=key, v=value: _labels(o).get(k) == v)
        elif term.startswith("!"):
            key = _check_key(term[1:].strip(), selector)
            checks.append(lambda o, k=key: k not in _labels(o))
        else:
            key = _check_key(term, selector)
            checks.append(lambda o, k=key: k in _labels(o))
    return lambda obj: all(check(obj) for check in checks)


def _labels(obj: Obj) -> dict[str, str]:
    labels: dict[str, str] = obj.get("metadata", {}).get("labels") or {}
    return labels


def field_value(obj: Obj, path: str) -> str:
    value: Any = obj
    if path == "source":  # events: the reporting component
        return str(obj.get("source", {}).get("component", ""))
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def parse_field_selector(plural: str, selector: str | None) -> Match:
    if not selector:
        return lambda obj: True
    supported = FIELDS.get(plural, COMMON_FIELDS)
    checks: list[Match] = []
    for term in _split_terms(selector):
        if "!=" in term:
            path, value = term.split("!=", 1)
            negate = True
        elif "=" in term:
            path, value = term.split("==" if "==" in term else "=", 1)
            negate = False
        else:
            raise _bad(f"invalid selector: '{selector}'; can't understand '{term}'")
        path = path.strip()
        if path not in supported:
            raise _bad(f'field label not supported: "{path}"')
        if negate:
            checks.append(lambda o, p=path, v=value: field_value(o, p) != v)
        else:
            checks.append(lambda o, p=path, v=value: field_value(o, p) == v)
    return lambda obj: all(check(obj) for check in checks)

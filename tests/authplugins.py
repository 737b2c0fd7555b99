"""Authenticators for the tests of the authentication contract (`hub.auth`).

`ScriptedAuthenticator` is a form authenticator whose answers a test sets: the
identity a login gets (name from the form, admin, groups, auth state) and what
a refresh answers, so the hub's side of the contract (lists, groups, auth
state, refresh, pre-spawn) can be tested without an identity provider.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from traitlets import Unicode

from hub.auth.base import Authenticator, Identity, LoginOutcome


class ScriptedAuthenticator(Authenticator):
    """Password 'letmein'; the rest of the answer comes from `script_file` (JSON):
    {"groups": [...], "admin": bool, "auth_state": {...}, "refresh": "ok"|"gone"|"new",
    "allowed": bool}. Every refresh is recorded in `script_file` + '.refreshed'."""

    default_id: ClassVar[str] = "scripted"
    script_file = Unicode("").tag(config=True)

    def _script(self) -> dict[str, Any]:
        path = Path(self.script_file)
        return json.loads(path.read_text()) if path.exists() else {}

    def allowed_by_identity(self, identity: Identity) -> bool:
        return bool(self._script().get("allowed", True))

    async def authenticate(self, handler: Any, form: Mapping[str, str]) -> LoginOutcome:
        if form.get("password") != "letmein" or not form.get("username"):
            return None
        script = self._script()
        groups = script.get("groups")
        return Identity(
            name=form["username"],
            admin=script.get("admin"),
            groups=tuple(groups) if groups is not None else None,
            full_name=script.get("full_name", ""),
            email=script.get("email", ""),
            auth_state=script.get("auth_state"),
        )

    async def start(self, hub: Any) -> None:
        if self._script().get("start") == "fail":
            raise RuntimeError("provider unreachable")
        _append(Path(self.script_file + ".started"), self.ident)

    async def refresh(self, name: str, auth_state: dict[str, Any] | None) -> LoginOutcome | bool:
        _append(Path(self.script_file + ".refreshed"), {"name": name, "auth_state": auth_state})
        answer = self._script().get("refresh", "ok")
        if answer == "gone":
            return None
        if answer == "new":
            return Identity(name=name, auth_state={"token": "refreshed"})
        return True


def _append(record: Path, entry: Any) -> None:
    seen = json.loads(record.read_text()) if record.exists() else []
    seen.append(entry)
    record.write_text(json.dumps(seen))


def record_pre_spawn(auth: Any, name: str, auth_state: Any, spawner: Any) -> None:
    """A pre_spawn_hook: writes what it was given next to the script file and hands the
    token to the server's environment."""
    Path(auth.script_file + ".prespawn").write_text(json.dumps([name, auth_state]))
    if auth_state:
        spawner.environment["SCRIPTED_TOKEN"] = auth_state.get("token", "")

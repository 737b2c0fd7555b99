"""Real Unix accounts for the system-users tests (`atrtest*`, removed afterwards).

Creating accounts needs root and useradd (as in CI); the `unix_users` and
`run_root` fixtures in conftest use this.
"""

from __future__ import annotations

import pwd
import secrets
import subprocess
from dataclasses import dataclass, field


@dataclass
class UnixUsers:
    users: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

    def group(self) -> str:
        name = f"atrtestg{secrets.token_hex(3)}"
        subprocess.run(["groupadd", name], check=True)
        self.groups.append(name)
        return name

    def user(self, *groups: str) -> pwd.struct_passwd:
        name = f"atrtest{secrets.token_hex(4)}"
        extra = ["-G", ",".join(groups)] if groups else []
        subprocess.run(["useradd", "--create-home", *extra, name], check=True)
        self.users.append(name)
        return pwd.getpwnam(name)

    def cleanup(self) -> None:
        for name in self.users:
            subprocess.run(["userdel", "-r", name], check=False, capture_output=True)
        for name in self.groups:
            subprocess.run(["groupdel", name], check=False, capture_output=True)

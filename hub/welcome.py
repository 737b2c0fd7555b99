"""What the hub prints for the person at the terminal on its first start."""

from __future__ import annotations

import sys
from pathlib import Path

from hub.bootstrap import InitialAdmin


def hub_admin_command() -> str:
    """How to call hub-admin from here: its full path when it is not on PATH."""
    import shutil

    beside = Path(sys.executable).parent / "hub-admin"
    if beside.exists() and shutil.which("hub-admin") != str(beside):
        return str(beside)
    return "hub-admin"


def print_welcome(url: str, admin: InitialAdmin) -> None:
    """On first start, tell the person at the terminal how to log in (once)."""
    if not admin.created:
        return
    lines = [
        "",
        f"  Atrium is running at {url}",
        f"  Admin user:  {admin.name}",
    ]
    if admin.password is not None:
        lines.append(f"  Password:    {admin.password}    (shown only this once)")
    else:
        lines.append("  Password:    the one you configured")
    api = url + "api"
    lines += [
        f"  Log in:      {url}login",
        f"  Admin panel: {url}admin    (users, groups, class rosters, audit log)",
        f"  API token:   {url}token, or",
        f'    curl -X POST -d \'{{"auth": {{"username": "{admin.name}", '
        f'"password": "PASSWORD"}}}}\' {api}/users/{admin.name}/tokens',
        f"  Then: {hub_admin_command()} --url {url} --token TOKEN user list",
        "",
    ]
    print("\n".join(lines), flush=True)

"""Seed a new Atrium database directly (run by Atrium's Python, the hub not running).

Reads a JSON object on stdin: `db_url`, `users` (names), `servers` (user name ->
`[pid, port]`: a running default server), `admin_password`, `token`. Creates the
schema with the hub's own migrations (`hub.db.migrate`), the default roles and
the first admin (`hub.bootstrap`, as the hub's first start does), the users with
bulk inserts of the hub's models (`hub.db.models`, the columns
`hub.ops.users.create_users` fills), each listed user's default server as
running (`started`, `url`, state `{"pid", "port"}`: what `spawn_succeeded`
records), and an API token for the admin (`hub.ops.tokens.create_token`'s row:
hashed, scopes `inherit`). One transaction; prints the counts as JSON.
JupyterHub's twin: `jupyterhub_seed.py`.
"""

from __future__ import annotations

import json
import sys

from sqlalchemy import func, insert, select

from hub import bootstrap
from hub.db import migrate
from hub.db.engine import Database
from hub.db.models import APIToken, Server, User
from hub.ops.users import new_cookie_id
from hub.secrets_hash import hash_token, token_prefix
from hub.timeutil import utcnow

ADMIN = "admin"


def main() -> int:
    plan = json.load(sys.stdin)
    db = Database(plan["db_url"])
    try:
        migrate.check_current(db.engine)
        now = utcnow()
        with db.session() as session:
            bootstrap.sync_roles(session, [])
            bootstrap.ensure_initial_admin(session, ADMIN, plan["admin_password"])
            session.flush()
            admin_id = session.scalar(select(User.id).where(User.name == ADMIN))
            servers: dict[str, list[int]] = plan["servers"]
            session.execute(
                insert(User),
                [
                    {
                        "name": name,
                        "admin": False,
                        "blocked": False,
                        "created": now,
                        "cookie_id": new_cookie_id(),
                        "last_activity": now if name in servers else None,
                    }
                    for name in plan["users"]
                ],
            )
            ids = {name: id_ for name, id_ in session.execute(select(User.name, User.id))}
            if servers:
                session.execute(
                    insert(Server),
                    [
                        {
                            "user_id": ids[name],
                            "name": "",
                            "url": f"http://127.0.0.1:{port}",
                            "started": now,
                            "last_activity": now,
                            "state": {"pid": pid, "port": port},
                            "user_options": {},
                        }
                        for name, (pid, port) in servers.items()
                    ],
                )
            token = plan["token"]
            session.add(
                APIToken(
                    user_id=admin_id,
                    prefix=token_prefix(token),
                    hashed=hash_token(token),
                    scopes=["inherit"],
                    note="scale benchmark",
                    created=now,
                )
            )
            counts = {
                "users": session.scalar(select(func.count()).select_from(User)),
                "running": session.scalar(
                    select(func.count()).select_from(Server).where(Server.started.is_not(None))
                ),
            }
    finally:
        db.close()
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())

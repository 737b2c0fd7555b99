"""Seed a new JupyterHub database with its own ORM (run by JupyterHub 6's Python).

Reads a JSON object on stdin: `db_url`, `users` (names), `servers` (user name ->
`[pid, port]`: a running default server). Creates the schema
(`orm.new_session_factory`, which stamps the alembic revision of a new
database), JupyterHub's default roles (`roles.create_role`, as its start-up
does), the users with the default `user` role (what its user API grants), and
each listed user's default server as running: an `orm.Spawner` with `started`,
state `{"pid", "port"}` and an `orm.Server` at 127.0.0.1:port under
`/user/NAME/`, as JupyterHub records a server that started. One transaction;
prints the counts as JSON. Atrium's twin: `atrium_seed.py`.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys

from jupyterhub import orm, roles  # type: ignore[import-not-found]


def main() -> int:
    plan = json.load(sys.stdin)
    logging.getLogger("JupyterHub").setLevel(logging.WARNING)
    db = orm.new_session_factory(plan["db_url"])()
    for role in roles.get_default_roles():
        roles.create_role(db, role, commit=False)
    user_role = orm.Role.find(db, "user")
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)  # JupyterHub: naive UTC
    servers: dict[str, list[int]] = plan["servers"]
    for name in plan["users"]:
        user = orm.User(name=name, roles=[user_role])
        db.add(user)
        running = servers.get(name)
        if running is None:
            continue
        pid, port = running
        user.last_activity = now
        server = orm.Server(ip="127.0.0.1", port=port, base_url=f"/user/{name}/")
        db.add(
            orm.Spawner(
                user=user,
                name="",
                server=server,
                state={"pid": pid, "port": port},
                started=now,
                last_activity=now,
                user_options={},
            )
        )
    db.commit()
    running = db.query(orm.Spawner).filter(orm.Spawner.server_id.isnot(None)).count()
    print(json.dumps({"users": db.query(orm.User).count(), "running": running}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

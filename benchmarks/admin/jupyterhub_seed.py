"""Seed a stopped JupyterHub's database with its own ORM (run by JupyterHub's Python).

Reads a JSON object on stdin: `db_url`, `users` (names), `groups` (name ->
members), `activity` (name -> ISO 8601 UTC time). Does what JupyterHub's REST API
does for each of them, in one transaction instead of one per user: an
`orm.User` with the default `user` role (`roles.grant_role`, as
`assign_default_roles` gives a user who is not an admin), `orm.Group`s with
their members, `last_activity` as naive UTC (as the activity API stores it).
The hub must have started once on this database (it made the schema and the
roles) and be stopped. Used by `seed.py`; JupyterHub's bulk user API commits
after every user, which takes minutes for 10,000.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys

from jupyterhub import orm, roles  # type: ignore[import-not-found]


def main() -> int:
    plan = json.load(sys.stdin)
    logging.getLogger("JupyterHub").setLevel(logging.WARNING)  # grant_role logs each grant
    db = orm.new_session_factory(plan["db_url"])()
    user_role = orm.Role.find(db, "user")
    if user_role is None:
        print("the database has no 'user' role: start the hub on it once first", file=sys.stderr)
        return 1
    users = {}
    for name in plan["users"]:
        user = orm.User(name=name)
        db.add(user)
        roles.grant_role(db, entity=user, role=user_role, commit=False)
        users[name] = user
    for name, members in plan["groups"].items():
        db.add(orm.Group(name=name, users=[users[m] for m in members]))
    for name, when in plan["activity"].items():
        moment = datetime.datetime.fromisoformat(when.replace("Z", "+00:00"))
        users[name].last_activity = moment.astimezone(datetime.UTC).replace(tzinfo=None)
    db.commit()
    print(json.dumps({"users": db.query(orm.User).count(), "groups": db.query(orm.Group).count()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

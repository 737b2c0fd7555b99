"""The same users, groups and activity in both hubs.

- `users` users `user00000`... (bulk `POST /hub/api/users {"usernames"}`);
- `groups` groups `class-00`... of `group_size` users each (`POST
  /hub/api/groups/{name} {"users"}`), so the first groups * group_size users are
  in one group each;
- every `activity_every`-th user gets a last activity spread over the last 30
  days (`POST /hub/api/users/{name}/activity {"last_activity"}`); the others
  have none, as users who never logged in;
- no servers run: starting thousands of real servers is not what this measures,
  and both hubs show every user as stopped.

Atrium gets them through its REST API (the requests named above). JupyterHub
gets them by default through its own ORM while it is stopped
(`jupyterhub_seed.py`: what its API does, in one transaction; its bulk user API
commits after every user, minutes for 10,000 on two cores), or with
`--seed-jupyterhub-api` through the same REST requests as Atrium. Either way
`verify` checks, through each hub's API, that both hold the same users, groups
and activity. Not timed (reported). Neighbours: `hubsetup.py`,
`jupyterhub_seed.py`, `../hubs.py` (`seed_users`).
"""

from __future__ import annotations

import datetime
import json
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import hubs
from hubs import BenchError, RunningHub

PAGINATION = "application/jupyterhub-pagination+json"
ORM_SEED = Path(__file__).with_name("jupyterhub_seed.py")
ACTIVITY_SPAN = datetime.timedelta(days=30)


@dataclass(frozen=True)
class SeedPlan:
    users: int = 10_000
    groups: int = 20
    group_size: int = 100
    activity_every: int = 5
    chunk: int = 1000
    # the moment the activity is counted back from, the same for both hubs
    now: str = ""

    def names(self) -> list[str]:
        return [f"user{i:05d}" for i in range(self.users)]

    def group_members(self) -> dict[str, list[str]]:
        names = self.names()
        return {
            f"class-{g:02d}": names[g * self.group_size : (g + 1) * self.group_size]
            for g in range(self.groups)
            if g * self.group_size < len(names)
        }

    def activity(self) -> dict[str, str]:
        """user -> ISO 8601 last activity: spread over ACTIVITY_SPAN before `now`."""
        now = datetime.datetime.fromisoformat(self.now)
        names = self.names()[:: self.activity_every]
        step = ACTIVITY_SPAN / max(len(names), 1)
        return {
            name: (now - i * step).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            for i, name in enumerate(names)
        }

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def plan(users: int) -> SeedPlan:
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
    return SeedPlan(users=users, now=now.isoformat(timespec="seconds"))


def _check(hub: RunningHub, what: str, status: int, body: bytes, *expected: int) -> None:
    if status not in expected:
        raise BenchError(f"{hub.name}: {what} answered {status}: {body[:300]!r}")


def seed(hub: RunningHub, p: SeedPlan) -> dict[str, float]:
    """Create everything in `p`; seconds per part."""
    took = {"users": hubs.seed_users(hub, p.names(), p.chunk)}
    t0 = time.perf_counter()
    with hub.client(timeout=300) as c:
        for group, members in p.group_members().items():
            body = json.dumps({"users": members}).encode()
            r = c.request("POST", f"/hub/api/groups/{group}", body)
            _check(hub, f"POST /groups/{group}", r.status, r.body, 201)
        took["groups"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for name, when in p.activity().items():
            body = json.dumps({"last_activity": when}).encode()
            r = c.request("POST", f"/hub/api/users/{name}/activity", body)
            # JupyterHub answers 200, Atrium 204 (no body)
            _check(hub, f"POST /users/{name}/activity", r.status, r.body, 200, 204)
        took["activity"] = time.perf_counter() - t0
    return {k: round(v, 1) for k, v in took.items()}


def seed_jupyterhub_orm(python: Path, db_url: str, p: SeedPlan) -> dict[str, float]:
    """The same data written by JupyterHub's own ORM into its stopped hub's database
    (`jupyterhub_seed.py`, run by `python` of JupyterHub's virtualenv); seconds."""
    body = {
        "db_url": db_url,
        "users": p.names(),
        "groups": p.group_members(),
        "activity": p.activity(),
    }
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            [str(python), str(ORM_SEED)],
            input=json.dumps(body),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchError("seeding JupyterHub's database took over 600 s") from None
    if done.returncode != 0:
        raise BenchError(f"seeding JupyterHub's database failed:\n{done.stderr[-2000:]}")
    return {"orm_all": round(time.perf_counter() - t0, 1)}


def verify(hub: RunningHub, p: SeedPlan, admins: Sequence[str]) -> dict[str, Any]:
    """What the hub now holds, as its API reports it: the total number of users,
    one grouped user and one active user. BenchError when it differs from `p`."""
    with hub.client() as c:
        r = c.request("GET", "/hub/api/users?limit=1", accept=PAGINATION)
        _check(hub, "GET /users", r.status, r.body, 200)
        total = int(json.loads(r.body)["_pagination"]["total"])
        if total != p.users + len(admins):
            raise BenchError(f"{hub.name} holds {total} users, not {p.users} + {len(admins)}")
        groups, active = p.group_members(), p.activity()
        first_group = next(iter(groups))
        some = groups[first_group][-1]
        r = c.request("GET", f"/hub/api/users/{some}")
        _check(hub, f"GET /users/{some}", r.status, r.body, 200)
        if first_group not in json.loads(r.body).get("groups", []):
            raise BenchError(f"{hub.name}: {some} is not in {first_group}")
        last = list(active)[-1]
        r = c.request("GET", f"/hub/api/users/{last}")
        _check(hub, f"GET /users/{last}", r.status, r.body, 200)
        seen = json.loads(r.body).get("last_activity")
        if not seen or seen[:16] != active[last][:16]:
            raise BenchError(f"{hub.name}: {last}'s last_activity is {seen}, not {active[last]}")
    return {"users": total, "groups": len(groups), "with_activity": len(active)}

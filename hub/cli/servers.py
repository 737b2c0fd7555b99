"""`hub-admin server list|start|stop`: one user's, a group's or everyone's servers.

Targets: `--user NAME`, `--group NAME` (its members) or `--all` (every user),
and `--server NAME` for a named server instead of the default one. `list`
shows everyone when no target is given; `start` and `stop` need one.

`start` and `stop` run `--parallel` servers at a time (default 10), print a
line per server as it finishes (its outcome and how long it took) and a
summary, and exit with status 1 if any failed. Each server gets `--timeout`
seconds (default 300) to be ready or stopped. Servers already running (or
stopped) are reported as such and count as done; for `--group` and `--all`,
blocked users are skipped. Only a running hub can start and stop servers, so
with `--db` only `list` works.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed

from hub.cli.backend import Model, UserListQuery
from hub.cli.control import Outcome, ServerControl, ServerId, server_state
from hub.cli.errors import CLIError, UsageError
from hub.cli.output import printable, when, width
from hub.cli.parsing import SubParsers, nonempty, positive_int
from hub.cli.runtime import Runtime

DEFAULT_PARALLEL = 10
DEFAULT_WAIT = 300.0
MAX_PARALLEL = 100
STATES = ("ready", "pending", "stopped")


def _targets(parser: argparse.ArgumentParser, required: bool) -> None:
    which = parser.add_mutually_exclusive_group(required=required)
    which.add_argument("--user", type=nonempty, metavar="NAME", help="this user's server")
    which.add_argument("--group", type=nonempty, metavar="NAME", help="the servers of its members")
    which.add_argument("--all", action="store_true", help="every user's server")
    parser.add_argument(
        "--server",
        type=nonempty,
        metavar="NAME",
        help="a named server instead of the default one",
    )


def _parallel(text: str) -> int:
    value = positive_int(text)
    if value > MAX_PARALLEL:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_PARALLEL}")
    return value


def register(commands: SubParsers, parents: list[argparse.ArgumentParser]) -> None:
    noun = commands.add_parser(
        "server", parents=parents, help="list, start and stop users' servers"
    )
    verbs = noun.add_subparsers(dest="verb", metavar="SUBCOMMAND", required=True)

    p = verbs.add_parser(
        "list",
        parents=parents,
        help="list servers: user, server, state, URL, started, last activity",
        description="List servers (everyone's unless --user or --group says whose), "
        "stopped ones included: a user who never started one shows a stopped default server.",
    )
    _targets(p, required=False)
    p.add_argument("--state", choices=STATES, help="only servers in this state")
    p.set_defaults(run=list_servers)

    for verb, run, did in (("start", start_servers, "ready"), ("stop", stop_servers, "stopped")):
        p = verbs.add_parser(
            verb,
            parents=parents,
            help=f"{verb} servers and wait until they are {did}",
            description=f"{verb.capitalize()} the servers of a user, a group or everyone, "
            f"--parallel at a time, and wait until each is {did} (--timeout seconds each, "
            f"default {DEFAULT_WAIT:g}). Prints a line per server as it finishes, then a "
            "summary. Exit status 1 if any failed. Needs a running hub (not --db).",
        )
        _targets(p, required=True)
        p.add_argument(
            "--parallel",
            type=_parallel,
            default=DEFAULT_PARALLEL,
            metavar="N",
            help=f"how many at a time (default: {DEFAULT_PARALLEL})",
        )
        p.set_defaults(run=run)


# --- which servers ------------------------------------------------------------------------


def _users(args: argparse.Namespace, rt: Runtime) -> list[Model]:
    if args.user:
        return [rt.backend.get_user(args.user)]
    everyone = rt.backend.list_users(UserListQuery(sort="name", include_stopped=True))
    if args.group:
        group = rt.backend.get_group(args.group)  # an unknown group is an error, not empty
        members = set(group.get("users") or [])
        return [u for u in everyone if u.get("name") in members]
    return everyone


def _rows(users: list[Model], server: str | None) -> list[tuple[ServerId, Model | None]]:
    """(server, its model or None if it never existed) for each user's server(s)."""
    rows: list[tuple[ServerId, Model | None]] = []
    for user in users:
        name = str(user.get("name", ""))
        servers = user.get("servers") if isinstance(user.get("servers"), dict) else {}
        assert isinstance(servers, dict)
        names = [server] if server is not None else sorted(set(servers) | {""})
        rows.extend((ServerId(name, s), servers.get(s)) for s in names)
    return rows


# --- list -----------------------------------------------------------------------------


def list_servers(args: argparse.Namespace, rt: Runtime) -> None:
    rows = _rows(_users(args, rt), args.server)
    shown = []
    for target, model in rows:
        state = server_state(model)
        if args.state and state.split()[0] != args.state:
            continue
        model = model or {}
        shown.append(
            {
                "user": target.user,
                "server": target.server,
                "state": state,
                "url": model.get("url") if state != "stopped" else None,
                "started": model.get("started"),
                "last_activity": model.get("last_activity"),
            }
        )
    if rt.out.json_mode:
        rt.out.json(shown)
        return
    if not shown:
        rt.out.note("No servers found.")
        return
    rt.out.table(
        ["USER", "SERVER", "STATE", "URL", "STARTED", "LAST ACTIVITY"],
        [
            [
                s["user"],
                s["server"] or "-",
                s["state"],
                s["url"] or "-",
                when(s["started"]),
                when(s["last_activity"]),
            ]
            for s in shown
        ],
    )


# --- start and stop -------------------------------------------------------------------


def _control(args: argparse.Namespace, rt: Runtime) -> ServerControl:
    if rt.offline:
        raise UsageError(
            f"server {args.verb} needs a running hub (the hub runs the servers); --db only "
            "works on the database: use --url and a token instead"
        )
    from hub.cli.rest import RestBackend

    backend = rt.backend
    assert isinstance(backend, RestBackend)
    return ServerControl(backend, getattr(args, "timeout", DEFAULT_WAIT))


def _run_all(
    args: argparse.Namespace,
    rt: Runtime,
    jobs: list[tuple[ServerId, Callable[[], Outcome]]],
    done: list[Outcome],
) -> list[Outcome]:
    """Run the jobs --parallel at a time, printing a line as each finishes."""
    labels = [target.label for target, _ in jobs] + [o.target.label for o in done]
    pad = max((width(printable(label)) for label in labels), default=0)

    def report(outcome: Outcome) -> None:
        label = printable(outcome.target.label)
        line = f"{label}{' ' * (pad - width(label))}  {outcome.result:<15}  {outcome.seconds:6.1f}s"
        if outcome.message:
            line += f"  {outcome.message}"
        if rt.out.json_mode:
            rt.out.note(line)
        else:
            rt.out.line(line)
            rt.out.out.flush()

    for outcome in done:
        report(outcome)
    results = list(done)
    pool = ThreadPoolExecutor(max_workers=args.parallel, thread_name_prefix="hub-admin")
    try:
        futures: list[Future[Outcome]] = [pool.submit(job) for _, job in jobs]
        for future in as_completed(futures):
            outcome = future.result()
            results.append(outcome)
            report(outcome)
    finally:
        # on an interrupt, servers not begun are not begun; those under way finish
        pool.shutdown(wait=False, cancel_futures=True)
    return results


def _finish(verb: str, rt: Runtime, results: list[Outcome], began: float) -> None:
    elapsed = time.monotonic() - began
    counts: dict[str, int] = {}
    for outcome in results:
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    failed = [o for o in results if not o.ok]
    detail = ", ".join(f"{n} {result}" for result, n in sorted(counts.items()))
    past = "Started" if verb == "start" else "Stopped"
    total = len([o for o in results if o.result != "skipped"])
    summary = f"{past} {total - len(failed)} of {total} servers in {elapsed:.1f}s ({detail})."
    if rt.out.json_mode:
        rt.out.json(
            [
                {
                    "user": o.target.user,
                    "server": o.target.server,
                    "ok": o.ok,
                    "result": o.result,
                    "seconds": round(o.seconds, 3),
                    "message": o.message,
                }
                for o in results
            ]
        )
        rt.out.note(summary)
    else:
        rt.out.line(summary)
    if failed:
        raise CLIError(f"{len(failed)} of {total} servers failed to {verb}")


def _plan(
    args: argparse.Namespace, rt: Runtime, control: ServerControl, verb: str
) -> tuple[list[tuple[ServerId, Callable[[], Outcome]]], list[Outcome]]:
    users = _users(args, rt)
    done: list[Outcome] = []
    if not args.user and verb == "start":
        blocked = [u for u in users if u.get("blocked")]
        done += [
            Outcome(
                ServerId(str(u.get("name")), args.server or ""), True, "skipped", 0.0, "blocked"
            )
            for u in blocked
        ]
        users = [u for u in users if not u.get("blocked")]
    jobs: list[tuple[ServerId, Callable[[], Outcome]]] = []
    for target, model in _rows(users, args.server if args.server is not None else ""):
        state = server_state(model)
        if verb == "start" and state == "ready":
            done.append(Outcome(target, True, "already running", 0.0))
        elif verb == "stop" and state == "stopped":
            done.append(Outcome(target, True, "already stopped", 0.0))
        else:
            action = control.start if verb == "start" else control.stop

            def job(
                t: ServerId = target, act: Callable[[ServerId, float], str] = action
            ) -> Outcome:
                return control.run(t, act)

            jobs.append((target, job))
    return jobs, done


def _start_or_stop(args: argparse.Namespace, rt: Runtime, verb: str) -> None:
    control = _control(args, rt)
    began = time.monotonic()
    jobs, done = _plan(args, rt, control, verb)
    if not jobs and not done:
        rt.out.note("No servers to " + verb + ".")
        return
    results = _run_all(args, rt, jobs, done)
    _finish(verb, rt, results, began)


def start_servers(args: argparse.Namespace, rt: Runtime) -> None:
    _start_or_stop(args, rt, "start")


def stop_servers(args: argparse.Namespace, rt: Runtime) -> None:
    _start_or_stop(args, rt, "stop")

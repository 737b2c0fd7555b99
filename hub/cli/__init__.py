"""`hub-admin`: manage users, groups, servers and tokens from a terminal or a script.

One command line, two backends with one interface (`hub.cli.backend.Backend`):

- REST (`hub.cli.rest`): talks to a running hub's API with an API token,
  using only the standard library so the command starts fast. Where the hub
  and token come from (flags, environment, config file) is `hub.cli.config`.
- Offline (`hub.cli.offline`): `--db URL` works on the database directly by
  running the same units of work the API runs (`hub.ops`), as a full admin.

`hub.cli.main` builds the parser and runs a command; each noun has its own
module that adds its subcommands with `register()` and renders results
through `hub.cli.output`: `users` (with `roster` for `user import`),
`groups`, `servers` (starting and stopping one server is `control`; only the
REST backend can), `tokens`, `audit`, and `completion` (shell completion
generated from the parser).
"""

"""`hub-admin`: manage users and tokens from a terminal or a script.

One command line, two backends with one interface (`hub.cli.backend.Backend`):

- REST (`hub.cli.rest`): talks to a running hub's API with an API token,
  using only the standard library so the command starts fast.
- Offline (`hub.cli.offline`): `--db URL` works on the database directly by
  running the same units of work the API runs (`hub.ops`), as a full admin.

`hub.cli.main` builds the parser and runs a command; each noun has its own
module (`users`, `tokens`) that adds its subcommands and renders results
through `hub.cli.output`. Later nouns (groups, servers, audit) plug in the
same way: a module with `register()` and a method per operation on `Backend`.
"""

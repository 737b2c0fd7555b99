"""Authentication: who a person is, and whether they may use the hub.

- `base`: the authenticator contract (`Authenticator`, `Identity`) and the
  shared settings (allowed, blocked and admin users, username rules, hooks);
- `login`: the login page and how every login ends; `accept`: the database
  step turning an identity into a logged-in user; `throttle`: slowing down
  password guessing; `crypto`: auth state and TOTP secret encryption;
  `registry`: loading the configured authenticators (`c.Hub.authenticator_class`);
- the authenticators: `native` (the hub's own accounts), `pam` (system
  accounts), `shared` (a workshop's shared password), `dummy` (tests and
  demos), and `oauth` (OAuth2 / OpenID Connect with provider presets).
"""

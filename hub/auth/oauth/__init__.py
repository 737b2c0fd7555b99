"""OAuth2 and OpenID Connect logins: the hub as a client of an identity provider.

- `base`: `OAuthAuthenticator`, what every provider shares (settings, the
  authorization request with PKCE, the code exchange, refresh, auth state);
- `handlers`: the two routes, `/hub/oauth_login/<id>` (starts a login) and
  `/hub/oauth_callback` (the provider sends the person back; JupyterHub's path,
  so registered redirect URIs carry over);
- `pending`: the login in flight (state, nonce, PKCE verifier) kept in a signed
  cookie, and the record of states already used;
- `idtoken`: ID token checks (signature against the provider's JWKS, issuer,
  audience, times, nonce); `http`: requests to the provider, with timeouts and
  errors a person can read;
- the authenticators: `oidc` (any OpenID Connect provider, by discovery),
  `google` and `entra` (OIDC presets), `github` and `gitlab` (OAuth2 with their
  APIs for organizations, teams and groups).
"""

# Atrium for a class: students log in with the university's OpenID Connect provider,
# guest instructors with hub accounts, on one login page.
# Run with: atrium --config config/class.py
# The client secret stays out of this file: ATRIUM_OAUTH_CLIENT_SECRET=... in the
# environment. Keep the providers' tokens for the servers (auth state) with
# ATRIUM_CRYPT_KEY=$(openssl rand -hex 32).
c = get_config()  # noqa: F821 (provided by the config loader)

c.Hub.title = "Physics 101 Jupyter"
c.Hub.authenticator_class = ["oidc", "native"]

# The university's provider (Keycloak here); the redirect URI registered with it is
# https://jupyter.example.edu/hub/oauth_callback
c.GenericOIDCAuthenticator.display_name = "University login"
c.GenericOIDCAuthenticator.issuer = "https://login.example.edu/realms/university"
c.GenericOIDCAuthenticator.client_id = "physics-101-jupyter"
c.GenericOIDCAuthenticator.username_claim = "preferred_username"
c.GenericOIDCAuthenticator.groups_claim = "groups"
# enrolled students and the course staff get in; staff are admins
c.GenericOIDCAuthenticator.allowed_groups = ["physics-101-students", "physics-101-staff"]
c.GenericOIDCAuthenticator.admin_groups = ["physics-101-staff"]
# course groups in the hub follow the provider's
c.GenericOIDCAuthenticator.manage_groups = True

# Guest instructors: hub accounts made by an admin, with a second factor.
c.NativeAuthenticator.display_name = "Guest instructors"
c.NativeAuthenticator.minimum_password_length = 12

# A class logging in at the start of a lecture shares one NAT address: allow many
# failed logins per address, few per account.
c.Hub.login_address_failures_free = 300
c.Hub.login_failures_free = 5

# Servers nobody has used for an hour are stopped (the course staff get a working day);
# kernels left idle for half an hour inside a server are shut down.
c.Culler.enabled = True
c.Culler.timeout = 3600
c.Culler.group_timeouts = {"physics-101-staff": 8 * 3600}
c.Culler.kernel_timeout = 1800

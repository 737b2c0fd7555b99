# Atrium with PostgreSQL, for a larger deployment.
# The password is best kept out of this file: set ATRIUM_DB_URL in the
# environment instead (it overrides c.Hub.db_url), e.g.
#   ATRIUM_DB_URL=postgresql+psycopg://atrium:SECRET@db.internal/atrium
c = get_config()  # noqa: F821 (provided by the config loader)

c.Hub.db_url = "postgresql+psycopg://atrium@127.0.0.1/atrium"
c.Hub.db_pool_size = 8
c.Hub.log_format = "json"  # one JSON object per line for the log collector
c.Hub.cookie_secret_file = "/srv/atrium/cookie_secret"
c.Hub.proxy_auth_token_file = "/srv/atrium/proxy_token"

# Atrium on one machine, for a small class or lab.
# Run with: atrium --config config/local.py   (or copy to atrium_config.py)
# Every setting is listed, with its help, by: atrium generate-config --output -
c = get_config()  # noqa: F821 (provided by the config loader)

c.Hub.ip = "127.0.0.1"
c.Hub.port = 8000
c.Hub.db_url = "sqlite:///atrium.sqlite"
c.Hub.initial_admin_name = "admin"
c.Hub.log_format = "text"

# Let students run a few named servers each.
c.Hub.allow_named_servers = True
c.Hub.named_server_limit_per_user = 3

# Tokens made through the API expire after 90 days at most.
c.Hub.token_expires_in_max_seconds = 90 * 24 * 3600

# Teaching assistants can see everyone's activity and start or stop servers.
c.Hub.load_roles = [
    {
        "name": "teaching-assistant",
        "description": "See students and manage their servers",
        "scopes": ["list:users", "read:users", "servers", "read:groups"],
    },
]

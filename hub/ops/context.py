"""What units of work need to know about the hub they run in."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from hub.rbac.roles import RoleTable


@dataclass(frozen=True)
class HubContext:
    base_url: str = "/"
    roles: RoleTable = field(default_factory=RoleTable.from_config)
    page_default_limit: int = 200
    page_max_limit: int = 200
    token_expires_in_max: int = 0  # seconds; 0 = no limit
    allow_named_servers: bool = False
    named_server_limit_per_user: int = 0  # 0 = no limit
    # group membership comes from the identity provider (c.Authenticator.manage_groups):
    # the hub refuses to change it
    groups_managed: bool = False
    # c.Culler.kernel_timeout: servers shut down kernels idle this long (0: never)
    kernel_cull_timeout: int = 0

    def check_membership_editable(self) -> None:
        if self.groups_managed:
            from hub.errors import BadRequest

            raise BadRequest(
                "Group membership comes from the identity provider here "
                "(c.Authenticator.manage_groups): change it there"
            )

    def user_url(self, name: str, server: str = "") -> str:
        url = f"{self.base_url}user/{quote(name, safe='@')}/"
        if server:
            url += f"{quote(server, safe='')}/"
        return url

    def progress_url(self, name: str, server: str = "") -> str:
        url = f"{self.base_url}hub/api/users/{quote(name, safe='@')}/server"
        if server:
            url += f"s/{quote(server, safe='')}"
        return url + "/progress"

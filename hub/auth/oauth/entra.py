"""Microsoft Entra ID (formerly Azure AD): OpenID Connect for one tenant.

The issuer is `<authority>/<tenant id>/v2.0`, so ID tokens from other tenants
(other organisations, personal Microsoft accounts) fail the issuer check; the
`tid` claim must name the tenant too. Groups are the `groups` claim (group
object ids, or names when the app registration's token configuration emits
them); Entra leaves it out past 200 groups (the "overage" claim), in which
case no groups are known and `allowed_groups` cannot admit the person.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from traitlets import Unicode

from hub.auth.base import Refused
from hub.auth.oauth.base import check_url
from hub.auth.oauth.oidc import GenericOIDCAuthenticator
from hub.errors import ConfigError

ENTRA_AUTHORITY = "https://login.microsoftonline.com"
_TENANT = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


class EntraAuthenticator(GenericOIDCAuthenticator):
    """Log in with a Microsoft Entra ID account of one tenant."""

    default_id: ClassVar[str] = "entra"
    provider_name: ClassVar[str] = "Microsoft"
    default_username_claim: ClassVar[str] = "preferred_username"

    tenant_id = Unicode(
        "",
        help="The directory (tenant) id of the organisation, a GUID such as "
        "'72f988bf-86f1-41af-91ab-2d7cd011db47' (Entra admin center, Overview). Only its "
        "accounts can log in.",
    ).tag(config=True)
    authority_url = Unicode(
        ENTRA_AUTHORITY,
        help="Entra's login URL; another for a national cloud (e.g. "
        "'https://login.microsoftonline.us') or a stand-in in tests.",
    ).tag(config=True)

    def issuer_url(self) -> str:
        return f"{self.authority_url.rstrip('/')}/{self.tenant_id}/v2.0"

    def check_issuer(self) -> None:
        cls = type(self).__name__
        if not _TENANT.match(self.tenant_id):
            raise ConfigError(
                f"c.{cls}.tenant_id must be the tenant's id, a GUID like "
                "'72f988bf-86f1-41af-91ab-2d7cd011db47' (not 'common' or a domain name)"
            )
        check_url(f"c.{cls}.authority_url", self.authority_url)

    def refusal(self, id_claims: Mapping[str, Any], merged: Mapping[str, Any]) -> Refused | None:
        tid = id_claims.get("tid")
        if not isinstance(tid, str) or tid.lower() != self.tenant_id.lower():
            return Refused(
                "This Microsoft account belongs to another organisation. Log in with your "
                "organisation's account."
            )
        return None

"""A server's own credentials: its API token and its OAuth client.

Every start issues a fresh API token for the server (JUPYTERHUB_API_TOKEN),
owned by the user but limited to what a server needs: identify its owner's
visitors (`access:servers` for this server), read and report the owner's
activity. The same token is the secret of the server's OAuth client
(`jupyterhub-user-<name>[-<server>]`, redirect `<prefix>oauth_callback`).
Every stop revokes both, and with the client every token issued through it,
so a stopped server's credentials open nothing.
"""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hub.db.models import APIToken, OAuthClient, OAuthCode, Server, User
from hub.ops.context import HubContext
from hub.secrets_hash import hash_token, new_token, token_prefix


def client_id(user_name: str, server_name: str) -> str:
    """JupyterHub's name for a server's OAuth client."""
    ident = f"jupyterhub-user-{quote(user_name, safe='@')}"
    return f"{ident}-{quote(server_name, safe='')}" if server_name else ident


def access_scope(user_name: str, server_name: str) -> str:
    return f"access:servers!server={user_name}/{server_name}"


def server_token_scopes(user_name: str, server_name: str) -> list[str]:
    return sorted(
        {
            access_scope(user_name, server_name),
            f"read:users:activity!user={user_name}",
            f"users:activity!user={user_name}",
        }
    )


def _owner(session: Session, server_id: int) -> tuple[Server, User] | None:
    server = session.get(Server, server_id)
    if server is None:
        return None
    user = session.get(User, server.user_id)
    return (server, user) if user is not None else None


def issue(session: Session, ctx: HubContext, server_id: int) -> str:
    """New credentials for a server about to start (old ones revoked); returns the token."""
    found = _owner(session, server_id)
    if found is None:
        raise LookupError(f"no server {server_id}")
    server, user = found
    revoke(session, server_id)
    ident = client_id(user.name, server.name)
    prefix_url = ctx.user_url(user.name, server.name)
    token = new_token()
    session.add(
        APIToken(
            user_id=user.id,
            prefix=token_prefix(token),
            hashed=hash_token(token),
            scopes=server_token_scopes(user.name, server.name),
            note=f"Server at {prefix_url}",
            client_id=ident,
        )
    )
    session.add(
        OAuthClient(
            identifier=ident,
            description=f"Server at {prefix_url}",
            secret_hash=hash_token(token),
            redirect_uri=f"{prefix_url}oauth_callback",
            allowed_scopes=[access_scope(user.name, server.name)],
        )
    )
    session.flush()
    return token


def revoke(session: Session, server_id: int) -> None:
    """Delete a server's token, its OAuth client and every token issued through it."""
    found = _owner(session, server_id)
    if found is None:
        return
    server, user = found
    drop_client(session, client_id(user.name, server.name))
    session.flush()


def drop_client(session: Session, ident: str) -> None:
    """Delete an OAuth client and every token issued through it (or made for it)."""
    session.execute(delete(APIToken).where(APIToken.client_id == ident))
    client = session.scalar(select(OAuthClient).where(OAuthClient.identifier == ident))
    if client is not None:
        session.delete(client)


def end_session(session: Session, user_id: int, session_id: str) -> int:
    """Logging out: every token and code issued through this login session goes.
    Returns how many tokens were revoked."""
    ids = session.scalars(
        select(APIToken.id).where(APIToken.user_id == user_id, APIToken.session_id == session_id)
    ).all()
    session.execute(delete(APIToken).where(APIToken.id.in_(ids)))
    session.execute(
        delete(OAuthCode).where(OAuthCode.user_id == user_id, OAuthCode.session_id == session_id)
    )
    return len(ids)

"""Requests to an identity provider: JSON answers, bounded waits, readable failures.

Every failure becomes a `ProviderError` with a message for the person and one for
the log. Neither ever holds a token, a code or a secret: URLs are logged without
their query, and a provider's own error text is bounded.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import orjson
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from hub.log import bounded

log = logging.getLogger("hub.auth")

MAX_ANSWER = 2 * 1024 * 1024  # bytes: a discovery document, a JWKS, a user's groups


class ProviderError(Exception):
    """The identity provider could not be used: `message` for the person, `log_message`
    for operators; `status` for the page (502: the provider failed, 400: it refused)."""

    def __init__(self, message: str, log_message: str, status: int = 502) -> None:
        super().__init__(log_message)
        self.message = message
        self.log_message = log_message
        self.status = status


def where(url: str) -> str:
    """A URL as the log may show it: no query, no fragment, no credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return bounded(f"{parts.scheme}://{host}{port}{parts.path}", 200)


def capital(text: str) -> str:
    """`text` starting with a capital: a provider named "the identity provider" may
    begin a sentence."""
    return text[:1].upper() + text[1:]


def unreachable(provider: str) -> str:
    return (
        f"The hub could not reach {provider} to complete your login. Please try again "
        "in a moment; if it keeps happening, tell the hub's administrators."
    )


def bad_answer(provider: str) -> str:
    return (
        f"{capital(provider)} gave the hub an answer it could not use, so you are not logged in. "
        "Please try again; if it keeps happening, tell the hub's administrators."
    )


class Answer:
    """A provider's answer: its status and its JSON body (None when there was none)."""

    def __init__(self, status: int, body: Any, text: bytes) -> None:
        self.status = status
        self.body = body
        self.text = text

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def field(self, name: str) -> str:
        """A bounded string from an error answer (`error`, `message`), for the log."""
        value = self.body.get(name) if isinstance(self.body, dict) else None
        return bounded(str(value), 120) if value is not None else ""


async def request(
    provider: str,
    url: str,
    *,
    wait: float,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: str | bytes | None = None,
) -> Answer:
    """Call the provider and read its JSON answer, whatever the status (the caller
    decides what a 4xx means). ProviderError when it cannot be reached, times out,
    or answers with something that is not JSON."""
    all_headers = {"Accept": "application/json", "User-Agent": "Atrium"}
    all_headers.update(headers or {})
    req = HTTPRequest(
        url,
        method=method,
        headers=all_headers,
        body=body,
        connect_timeout=wait,
        request_timeout=wait,
        follow_redirects=False,
        decompress_response=True,
    )
    try:
        response = await AsyncHTTPClient().fetch(req, raise_error=False)
    except HTTPClientError as e:  # a timeout or a closed connection: no response at all
        if e.response is None:
            raise ProviderError(
                unreachable(provider), f"{method} {where(url)}: {type(e).__name__}"
            ) from None
        response = e.response
    except (OSError, TimeoutError) as e:
        raise ProviderError(
            unreachable(provider), f"{method} {where(url)}: {type(e).__name__}"
        ) from None
    if response.code == 599:  # tornado's own: no answer (timeout, refused connection)
        reason = type(response.error).__name__ if response.error else "no answer"
        raise ProviderError(unreachable(provider), f"{method} {where(url)}: {reason}")
    text = response.body or b""
    if len(text) > MAX_ANSWER:
        raise ProviderError(
            bad_answer(provider), f"{method} {where(url)}: answer of {len(text)} bytes"
        )
    parsed: Any = None
    if text.strip():
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            if response.code < 300:
                raise ProviderError(
                    bad_answer(provider),
                    f"{method} {where(url)} -> {response.code}: not JSON",
                ) from None
    return Answer(response.code, parsed, text)


async def get_json(provider: str, url: str, *, wait: float, token: str = "") -> Any:
    """GET a JSON document (with a bearer token, if given); ProviderError unless 2xx."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = await request(provider, url, wait=wait, headers=headers)
    if answer.status in (401, 403):
        # the token is not (or no longer) good: a refusal, not a provider failure
        raise ProviderError(
            f"{capital(provider)} no longer accepts this login. Please log in again.",
            f"GET {where(url)} -> {answer.status}",
            401,
        )
    if not answer.ok or answer.body is None:
        raise ProviderError(
            bad_answer(provider),
            f"GET {where(url)} -> {answer.status} "
            f"{answer.field('error') or answer.field('message')}",
        )
    return answer.body

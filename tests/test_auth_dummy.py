"""The dummy authenticator (tests and demos): any name gets in, on a loopback hub only."""

from __future__ import annotations

import pytest
from traitlets.config import Config

from hub.auth.accept import NOT_ALLOWED
from hub.auth.dummy import DummyAuthenticator
from hub.auth.login import WRONG
from hub.auth.registry import load_authenticators
from hub.errors import ConfigError
from tests.conftest import HubFactory
from tests.loginform import FormClient


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


def load(hub_ip: str, **settings: object) -> DummyAuthenticator:
    config = Config()
    for key, value in settings.items():
        config.DummyAuthenticator[key] = value
    [auth] = load_authenticators(["dummy"], config, hub_ip, b"k" * 32).authenticators
    assert isinstance(auth, DummyAuthenticator)
    return auth


@pytest.mark.parametrize("hub_ip", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_it_starts_on_loopback(hub_ip: str) -> None:
    assert load(hub_ip).ident == "dummy"


@pytest.mark.parametrize(
    "hub_ip",
    ["", "0.0.0.0", "::", "10.1.2.3", "hub.example.org"],  # noqa: S104
)
def test_it_refuses_to_start_on_other_addresses(hub_ip: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(hub_ip)
    message = str(raised.value)
    assert "lets anyone log in" in message
    assert "allow_non_loopback" in message
    assert (hub_ip or "every interface") in message
    # unless told to, for a demo on a closed network
    assert load(hub_ip, allow_non_loopback=True).allow_non_loopback


async def test_a_hub_on_every_interface_does_not_start(hub_factory: HubFactory) -> None:
    with pytest.raises(ConfigError, match="not only on loopback"):
        await hub_factory(config="c.Hub.authenticator_class = 'dummy'\n", ip="0.0.0.0")  # noqa: S104


async def test_any_name_and_password_log_in(hub_factory: HubFactory) -> None:
    hub = await hub_factory(
        config="c.Hub.authenticator_class = 'dummy'\nc.Authenticator.blocked_users = ['bo']\n"
    )
    client = FormClient(hub)
    assert (await client.log_in("dummy", "Ann", "anything")).status == 302
    assert await client.whoami() == "ann"
    client = FormClient(hub)
    assert (await client.log_in("dummy", "cy", "")).status == 302
    assert await client.whoami() == "cy"
    answer = await FormClient(hub).log_in("dummy", "", "anything")
    assert (answer.status, answer.error) == (403, WRONG)
    answer = await FormClient(hub).log_in("dummy", "bo", "anything")
    assert (answer.status, answer.error) == (403, NOT_ALLOWED)


async def test_a_password_for_every_account(hub_factory: HubFactory) -> None:
    hub = await hub_factory(
        config="c.Hub.authenticator_class = 'dummy'\n"
        "c.DummyAuthenticator.password = 'demo-password'\n"
    )
    for password in ("", "demo-passwor", "Demo-password"):
        client = FormClient(hub)
        answer = await client.log_in("dummy", "ann", password)
        assert (answer.status, answer.error) == (403, WRONG), password
        assert await client.whoami() is None
    client = FormClient(hub)
    assert (await client.log_in("dummy", "ann", "demo-password")).status == 302
    assert await client.whoami() == "ann"


def test_every_setting_is_documented() -> None:
    for name, trait in DummyAuthenticator.class_traits(config=True).items():
        assert trait.help, f"{name} has no help"

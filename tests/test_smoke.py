from tests.conftest import RunningHub


async def test_root_answers_version(hub: RunningHub) -> None:
    r = await hub.api("GET", "/", token=None)
    assert r.status == 200
    assert r.json()["version"]

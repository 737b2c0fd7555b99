"""Profiles: the options form of the Kubernetes spawner (spawners.kubernetes.profiles)."""

from __future__ import annotations

from typing import Any

import pytest
from traitlets import TraitError
from traitlets.config import Config

from spawners.base import SpawnError
from spawners.kubernetes import KubeSpawner
from spawners.kubernetes.profiles import ProfileError, check_profiles, choose, render_form

PROFILES: list[dict[str, Any]] = [
    {"display_name": "Small", "description": "1 CPU, 2G <fast>", "default": True},
    {
        "display_name": "GPU",
        "slug": "gpu",
        "kubespawner_override": {
            "image": "gpu-lab:1",
            "extra_resource_limits": {"nvidia.com/gpu": "1"},
        },
        "allowed_groups": ["ml-lab"],
    },
    {"display_name": "Big memory", "kubespawner_override": {"mem_limit": "8G"}},
]


def spawner(**kw: Any) -> KubeSpawner:
    c = Config()
    c.KubeSpawner.profile_list = PROFILES
    c.KubeSpawner.image = "lab:1"
    return KubeSpawner(user_name="alice", config=c, **kw)


def test_form_lists_profiles_escaped_with_the_default_checked() -> None:
    form = spawner().options_form
    assert 'value="small" checked' in form
    assert 'value="gpu"' in form
    assert 'value="big-memory"' in form
    assert "&lt;fast&gt;" in form
    assert "<fast>" not in form


def test_form_hides_profiles_outside_the_users_groups_when_known() -> None:
    s = spawner()
    s.user_groups = ["students"]
    assert 'value="gpu"' not in render_form(s.profiles, s.user_groups)


def test_form_is_read_back() -> None:
    assert spawner().options_from_form({"profile": ["gpu"]}) == {"profile": "gpu"}
    assert spawner().options_from_form({}) == {}


def test_default_profile_without_a_choice() -> None:
    s = spawner()
    assert s.apply_profile() is not None
    assert s.image == "lab:1"


def test_override_applies_for_one_start_only() -> None:
    s = spawner(user_options={"profile": "gpu"})
    s.user_groups = ["ml-lab"]
    s.apply_profile()
    assert s.image == "gpu-lab:1"
    assert s.extra_resource_limits == {"nvidia.com/gpu": "1"}
    s.user_options = {"profile": "big-memory"}
    s.apply_profile()
    assert s.image == "lab:1"  # the GPU profile's image is gone again
    assert s.extra_resource_limits == {}
    assert s.mem_limit == 8 * 1024**3


def test_unknown_profile_is_a_clear_error() -> None:
    s = spawner(user_options={"profile": "huge"})
    with pytest.raises(SpawnError, match=r"Unknown profile 'huge'; the choices are: small, big"):
        s.apply_profile()


def test_profile_outside_the_users_groups_is_refused() -> None:
    s = spawner(user_options={"profile": "gpu"})
    s.user_groups = ["students"]
    with pytest.raises(SpawnError, match="'GPU' is not available to you"):
        s.apply_profile()
    # groups not known to the spawner: only profiles open to everyone
    s.user_groups = None
    with pytest.raises(SpawnError, match="not available"):
        s.apply_profile()


def test_no_profile_available() -> None:
    profiles = check_profiles([{"display_name": "A", "allowed_groups": ["x"]}])
    with pytest.raises(ProfileError, match="No server profile is available"):
        choose(profiles, {}, ["y"])
    assert choose([], {"profile": "anything"}, None) is None


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"display_name": "A"}, {"display_name": "A"}], "used by an earlier profile"),
        ([{"display_name": ""}], "needs a display_name"),
        ([{"display_name": "A", "colour": "red"}], "unknown keys"),
        ([{"display_name": "A", "kubespawner_override": {"imag": "x"}}], "unknown settings"),
        ([{"display_name": "A", "allowed_groups": "staff"}], "list of group names"),
        (
            [{"display_name": "A", "default": True}, {"display_name": "B", "default": True}],
            "only one",
        ),
    ],
)
def test_bad_profile_lists_are_refused_at_config_time(
    entries: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(TraitError, match=message):
        KubeSpawner(user_name="a", profile_list=entries)


def test_override_with_a_bad_value_fails_the_start_clearly() -> None:
    s = KubeSpawner(
        user_name="a",
        profile_list=[{"display_name": "A", "kubespawner_override": {"cpu_limit": -1}}],
    )
    with pytest.raises(SpawnError, match="sets cpu_limit wrongly"):
        s.apply_profile()


def test_no_profiles_no_form() -> None:
    s = KubeSpawner(user_name="a")
    assert s.options_form == ""
    assert s.options_from_form({"x": ["1"]}) == {"x": "1"}


def test_user_options_checked_before_a_start() -> None:
    s = spawner()
    s.check_user_options({"profile": "small"})
    s.check_user_options({})
    with pytest.raises(ValueError, match="Unknown profile 'x'"):
        s.check_user_options({"profile": "x"})
    with pytest.raises(ValueError, match="not available to you"):
        s.check_user_options({"profile": "gpu"})

"""Profiles: the server choices a Kubernetes hub offers (its options form).

`profile_list` entries look like KubeSpawner's::

    {"display_name": "GPU", "description": "1 GPU, 16G", "slug": "gpu",
     "kubespawner_override": {"extra_resource_limits": {"nvidia.com/gpu": "1"}},
     "allowed_groups": ["ml-lab"], "default": False}

`check_profiles` validates the list when it is configured; `render_form` turns it
into the options form (radio buttons, names and descriptions escaped);
`options_from_form` reads the form back into `user_options` (`{"profile": slug}`);
`choose` picks the profile of one start from `user_options` (the form's or an
API caller's), refusing unknown slugs and profiles outside the user's groups with a
message the user can act on. The spawner (`spawners.kubernetes.spawner`) applies
the chosen profile's `kubespawner_override` to its settings for that start.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from spawners.kubernetes.names import slug as name_slug

KEYS = {"display_name", "description", "slug", "kubespawner_override", "allowed_groups", "default"}
OPTION = "profile"


class ProfileError(ValueError):
    """A profile choice (or a profile_list) that cannot be used; the message says why."""


@dataclass(frozen=True)
class Profile:
    display_name: str
    slug: str
    description: str = ""
    override: dict[str, Any] = field(default_factory=dict)
    allowed_groups: frozenset[str] = frozenset()
    default: bool = False

    def allows(self, groups: Iterable[str]) -> bool:
        """Open to everyone without allowed_groups; else to members of one of them."""
        return not self.allowed_groups or bool(self.allowed_groups.intersection(groups))


def _slug_of(display_name: str) -> str:
    """A profile's slug when none is given: its display name, lowercased and dashed."""
    dashed = re.sub(r"[^a-z0-9]+", "-", display_name.lower()).strip("-")
    return dashed or name_slug(display_name)


def check_profiles(entries: list[Any], known_settings: Iterable[str] = ()) -> list[Profile]:
    """Profiles from profile_list entries; ProfileError naming the first problem.
    `known_settings`: the names an override may set (unchecked when empty)."""
    known = set(known_settings)
    profiles: list[Profile] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"profile_list[{index}]"
        if not isinstance(entry, dict):
            raise ProfileError(f"{where} must be a dict, not {type(entry).__name__}")
        unknown = set(entry) - KEYS
        if unknown:
            raise ProfileError(
                f"{where} has unknown keys {sorted(unknown)}; known keys: {sorted(KEYS)}"
            )
        display = entry.get("display_name")
        if not isinstance(display, str) or not display.strip():
            raise ProfileError(f"{where} needs a display_name (a non-empty string)")
        slug = entry.get("slug") or _slug_of(display)
        if not isinstance(slug, str):
            raise ProfileError(f"{where}: slug must be a string")
        if slug in seen:
            raise ProfileError(f"{where}: the slug {slug!r} is used by an earlier profile")
        seen.add(slug)
        override = entry.get("kubespawner_override") or {}
        if not isinstance(override, dict):
            raise ProfileError(f"{where}: kubespawner_override must be a dict of settings")
        if known:
            bad = sorted(set(override) - known)
            if bad:
                raise ProfileError(
                    f"{where}: kubespawner_override sets unknown settings {bad} "
                    "(use the spawner's setting names, e.g. image, cpu_limit, mem_limit)"
                )
        groups = entry.get("allowed_groups") or []
        if isinstance(groups, str) or not all(isinstance(g, str) for g in groups):
            raise ProfileError(f"{where}: allowed_groups must be a list of group names")
        description = entry.get("description") or ""
        if not isinstance(description, str):
            raise ProfileError(f"{where}: description must be a string")
        profiles.append(
            Profile(
                display_name=display,
                slug=slug,
                description=description,
                override=dict(override),
                allowed_groups=frozenset(groups),
                default=bool(entry.get("default", False)),
            )
        )
    if sum(p.default for p in profiles) > 1:
        raise ProfileError("only one profile in profile_list may be the default")
    return profiles


def available(profiles: list[Profile], groups: Iterable[str] | None) -> list[Profile]:
    """The profiles a user may choose. `groups` None: not known, so only the profiles
    open to everyone."""
    member_of = list(groups or ())
    return [p for p in profiles if p.allows(member_of)]


def default_profile(profiles: list[Profile]) -> Profile | None:
    for profile in profiles:
        if profile.default:
            return profile
    return profiles[0] if profiles else None


def choose(
    profiles: list[Profile], user_options: dict[str, Any], groups: Iterable[str] | None
) -> Profile | None:
    """The profile for a start (None when no profiles are configured). Without a choice:
    the default profile if the user may use it, else the first one they may."""
    if not profiles:
        return None
    open_to_user = available(profiles, groups)
    wanted = user_options.get(OPTION)
    if wanted is None or wanted == "":
        chosen = default_profile(open_to_user)
        if chosen is None:
            raise ProfileError("No server profile is available to you; ask an admin for access")
        return chosen
    if not isinstance(wanted, str):
        raise ProfileError("The profile option must be a profile's slug (a string)")
    by_slug = {p.slug: p for p in profiles}
    profile = by_slug.get(wanted)
    if profile is None:
        choices = ", ".join(p.slug for p in open_to_user) or "none"
        raise ProfileError(f"Unknown profile {wanted[:64]!r}; the choices are: {choices}")
    if profile not in open_to_user:
        raise ProfileError(f"The profile {profile.display_name!r} is not available to you")
    return profile


def render_form(profiles: list[Profile], groups: Iterable[str] | None = None) -> str:
    """Radio buttons, one per profile (only those open to `groups` when given)."""
    shown = profiles if groups is None else available(profiles, groups)
    if not shown:
        return ""
    default = default_profile(shown)
    rows = []
    for index, profile in enumerate(shown):
        ident = f"profile-{index}"
        checked = " checked" if profile is default else ""
        description = (
            f'<span class="profile-description">{html.escape(profile.description)}</span>'
            if profile.description
            else ""
        )
        rows.append(
            f'<div class="profile"><input type="radio" name="{OPTION}" id="{ident}" '
            f'value="{html.escape(profile.slug, quote=True)}"{checked}>'
            f'<label for="{ident}"><strong>{html.escape(profile.display_name)}</strong> '
            f"{description}</label></div>"
        )
    return "\n".join(rows)


def options_from_form(formdata: dict[str, list[str]]) -> dict[str, Any]:
    """`{"profile": slug}` from the submitted form ({} when nothing was chosen)."""
    values = formdata.get(OPTION) or []
    return {OPTION: values[0]} if values and values[0] else {}

"""What the admin panel's pages share (`hub.pages.admin_panel`): the flash that carries
an action's outcome to the next page, pages of long lists, and relative times."""

from __future__ import annotations

import datetime

from hub.pages.admin_panel import (
    FLASH_MAX_BYTES,
    Flash,
    Pager,
    _decode_flash,
    _encode_flash,
    clamp_page,
    relative_time,
)


def test_a_long_flash_is_cut_to_fit_a_cookie_and_says_how_much_is_left_out() -> None:
    items = tuple(f"student{i:04d}: added to the group physics-101" for i in range(500))
    data = _encode_flash(Flash("ok", "Added 500 of 500 names to physics-101.", items))
    assert len(data) <= FLASH_MAX_BYTES
    flash = _decode_flash(data)
    assert flash is not None
    assert flash.text == "Added 500 of 500 names to physics-101."
    kept = len(flash.items) - 1
    assert 0 < kept <= 30
    assert flash.items[:kept] == items[:kept]
    assert flash.items[-1] == f"and {500 - kept} more"
    short = _decode_flash(_encode_flash(Flash("error", "No.", ("a: no such user",))))
    assert short == Flash("error", "No.", ("a: no such user",))
    for bad in (b"", b"[1]", b'{"kind": "evil", "text": "x"}', b"\xff"):
        assert _decode_flash(bad) is None


def test_pages() -> None:
    pager = Pager(2, 50, 120)
    assert (pager.offset, pager.pages, pager.first_shown, pager.last_shown) == (50, 3, 51, 100)
    assert pager.link("/hub/admin/groups", {"q": "a b", "x": ""}, 3) == (
        "/hub/admin/groups?q=a+b&page=3"
    )
    assert pager.link("/hub/admin/groups", {"q": ""}, 1) == "/hub/admin/groups"
    assert clamp_page(9, 50, 120).page == 3
    empty = clamp_page(4, 50, 0)
    assert (empty.page, empty.pages, empty.first_shown, empty.last_shown) == (1, 1, 0, 0)


def test_relative_times() -> None:
    now = datetime.datetime(2025, 3, 1, 12, 0, 0)
    ago = [
        (datetime.timedelta(seconds=5), "just now"),
        (datetime.timedelta(seconds=-5), "just now"),
        (datetime.timedelta(minutes=1), "1 minute ago"),
        (datetime.timedelta(minutes=59, seconds=59), "59 minutes ago"),
        (datetime.timedelta(hours=3), "3 hours ago"),
        (datetime.timedelta(days=1), "1 day ago"),
        (datetime.timedelta(days=29), "29 days ago"),
        (datetime.timedelta(days=45), "2025-01-15"),
        (datetime.timedelta(hours=-2), "2025-03-01 14:00 UTC"),
    ]
    for delta, text in ago:
        assert relative_time(now - delta, now) == text, delta

"""The admin panel's Import roster page: `/hub/admin/import`.

Over HTTP with multipart forms, as browsers send them: who may import; a pasted
or uploaded roster previewed row by row with nothing changed, then applied
exactly; bad input (not UTF-8, a spreadsheet, no username column, rows with
errors, too large, file and text both) refused with a clear message and nothing
changed; missing XSRF tokens; a roster or a hub that changed since the preview,
and a preview token that is not valid. Free-text full names are shown as text.
In Chromium: the form and the preview are accessible, also at phone width.
"""

from __future__ import annotations

import html
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from tornado.httpclient import AsyncHTTPClient

from hub.db.models import User
from hub.errors import BadRequest
from hub.ops import roster as roster_ops
from hub.pages.admin_import import apply_previewed, plan_hash
from tests.a11y import assert_accessible
from tests.browser import browser_page
from tests.conftest import SYSTEM, HubFactory, RunningHub, api_state
from tests.test_admin_audit import give_role
from tests.test_admin_groups import ADMIN_PASSWORD, admin_browser, follow
from tests.test_pages import PASSWORD, Browser

ROSTER = (
    "username,full_name,email,groups\n"
    "ann,Ann Lee,ann@example.org,physics-101;lab-a\n"
    "bo,Bo Chen,,physics-101\n"
    "cy,,cy@example.org,\n"
)
Field = tuple[str, str | bytes] | tuple[str, bytes, str]


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """SQLite only: the database backend does not matter here."""
    return sqlite_db_url


def multipart(fields: list[Any]) -> tuple[bytes, str]:
    """A multipart/form-data body: (name, value) fields and (name, bytes, filename) files."""
    boundary = "----atriumtest" + secrets.token_hex(8)
    parts = []
    for field in fields:
        name, value = field[0], field[1]
        data = value.encode() if isinstance(value, str) else value
        head = f'Content-Disposition: form-data; name="{name}"'
        if len(field) == 3:
            head += f'; filename="{field[2]}"\r\nContent-Type: text/csv'
        parts.append(f"--{boundary}\r\n{head}\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


async def submit(browser: Browser, fields: list[Any], xsrf: bool = True) -> Any:
    if xsrf:
        fields = [("_xsrf", await browser.xsrf()), *fields]
    body, content_type = multipart(fields)
    return await browser.request(
        "POST", "/hub/admin/import", body=body, headers={"Content-Type": content_type}
    )


async def preview(browser: Browser, text: str = ROSTER, status: int = 200) -> str:
    r = await submit(browser, [("step", "preview"), ("roster_text", text)])
    assert r.code == status, r.body[-3000:]
    return str(r.body.decode())


def hidden(page: str, name: str) -> str:
    found = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)">', page)
    assert found, name
    return html.unescape(found.group(1))


def preview_rows(page: str) -> list[tuple[str, str, str]]:
    """(line, username, action label) of each row of the preview."""
    return re.findall(
        r'<td class="num">(\d+)</td>\s*<th scope="row"><bdi class="name">([^<]*)</bdi></th>'
        r'\s*<td><span class="state [^"]+">([^<]+)</span>',
        page,
    )


async def apply(browser: Browser, page: str, **override: str) -> Any:
    fields = {"step": "apply", "token": hidden(page, "token"), "roster": hidden(page, "roster")}
    fields.update(override)
    return await submit(browser, list(fields.items()))


def users_table(session: Session) -> list[tuple[str, str, str]]:
    return [
        (u.name, u.full_name, u.email) for u in session.scalars(select(User).order_by(User.name))
    ]


# --- access -----------------------------------------------------------------------------


async def test_who_may_import(hub_factory: HubFactory) -> None:
    hub = await hub_factory(
        load_roles=[{"name": "panel-users", "scopes": ["admin-ui", "admin:users"]}]
    )
    await hub.add_user("ann", password=PASSWORD)
    await hub.add_user("panel", password=PASSWORD)
    await hub.db.run(give_role, "panel", "panel-users")
    anonymous = Browser(hub)
    r = await anonymous.request("GET", "/hub/admin/import")
    assert (r.code, r.headers["Location"]) == (302, "/hub/login?next=/hub/admin/import")
    before = await api_state(hub)
    for name in ("ann", "panel"):
        browser = Browser(hub)
        await browser.login(name)
        r = await browser.request("GET", "/hub/admin/import")
        assert r.code == 403, name
        r = await submit(browser, [("step", "preview"), ("roster_text", ROSTER)])
        assert r.code == 403, name
    # the admin panel alone is not enough: an import creates users and groups
    assert "admin:users and admin:groups" in r.body.decode()
    assert await api_state(hub) == before
    admin = await admin_browser(hub)
    page = (await admin.request("GET", "/hub/admin/import")).body.decode()
    assert 'href="/hub/admin/import" aria-current="page"' in page
    # the page shows the columns and an example
    assert "username,full_name,email,groups\nann,Ann Lee,ann@example.org" in page
    assert 'type="file"' in page
    assert 'enctype="multipart/form-data"' in page


# --- preview, then apply ----------------------------------------------------------------


async def test_preview_then_apply_a_pasted_roster(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    await hub.add_user("bo")
    await hub.add_user("cy")
    await hub.db.run(
        lambda s: s.execute(
            User.__table__.update().where(User.name == "cy").values(email="cy@example.org")
        )
    )
    admin = await admin_browser(hub)
    before = await api_state(hub)
    page = await preview(admin)
    assert await api_state(hub) == before  # a preview changes nothing
    assert preview_rows(page) == [
        ("2", "ann", "Create user"),
        ("3", "bo", "Update"),
        ("4", "cy", "Unchanged"),
    ]
    assert "would create 1 user, update 1, leave 1 unchanged.\n" in page
    assert "Groups to create: <bdi>lab-a</bdi>, <bdi>physics-101</bdi>." in page or (
        "Groups to create: <bdi>physics-101</bdi>, <bdi>lab-a</bdi>." in page
    )
    assert "<li><bdi>full name: &#39;&#39; -&gt; &#39;Bo Chen&#39;</bdi></li>" in page
    assert "<li><bdi>add to group physics-101</bdi></li>" in page
    assert "Apply this roster" in page
    r = await apply(admin, page)
    assert r.headers["Location"] == "/hub/admin/import"
    done = await follow(admin, r)
    assert "Roster imported: 1 user created, 1 updated, 1 unchanged." in done
    assert (
        "Groups created: physics-101, lab-a." in done
        or "Groups created: lab-a, physics-101." in done
    )
    assert "<li>Line 2, ann: create user; full name: &#39;&#39; -&gt; &#39;Ann Lee&#39;;" in done
    assert (
        "<li>Line 3, bo: full name: &#39;&#39; -&gt; &#39;Bo Chen&#39;; add to group physics-101"
        in done
    )
    assert await hub.db.run(users_table) == [
        ("admin", "", ""),
        ("ann", "Ann Lee", "ann@example.org"),
        ("bo", "Bo Chen", ""),
        ("cy", "", "cy@example.org"),
    ]
    groups = {g["name"]: g["users"] for g in (await hub.api("GET", "/groups")).json()}
    assert groups == {"physics-101": ["ann", "bo"], "lab-a": ["ann"]}
    events = (await hub.api("GET", "/audit?action=roster.import")).json()
    assert sorted(e["target"] for e in events) == ["ann", "bo"]
    # applying the same preview again: the hub changed since (it was applied), so a new
    # preview, in which everything is unchanged, and nothing more happens
    again = await apply(admin, page)
    assert again.code == 409
    text = again.body.decode()
    assert "The hub changed since the preview" in text
    assert preview_rows(text) == [
        ("2", "ann", "Unchanged"),
        ("3", "bo", "Unchanged"),
        ("4", "cy", "Unchanged"),
    ]
    assert len((await hub.api("GET", "/audit?action=roster.import")).json()) == 2


async def test_an_uploaded_file(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    admin = await admin_browser(hub)
    data = ("\ufeff" + ROSTER.replace("\n", "\r\n")).encode()
    r = await submit(
        admin,
        [("step", "preview"), ("roster_text", ""), ("roster_file", data, "class.csv")],
    )
    assert r.code == 200
    page = r.body.decode()
    assert "From the file <bdi>class.csv</bdi>." in page
    assert [row[2] for row in preview_rows(page)] == ["Create user"] * 3
    # the roster travels on without the byte order mark, with plain line ends
    assert hidden(page, "roster") == ROSTER
    done = await follow(admin, await apply(admin, page))
    assert "Roster imported: 3 users created, 0 updated, 0 unchanged." in done
    assert [u[0] for u in await hub.db.run(users_table)] == ["admin", "ann", "bo", "cy"]


async def test_the_roster_travels_with_crlf_line_ends(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    admin = await admin_browser(hub)
    page = await preview(admin)
    # browsers send hidden fields back with CRLF line ends: still the previewed roster
    r = await apply(admin, page, roster=hidden(page, "roster").replace("\n", "\r\n"))
    assert "Roster imported: 3 users created" in await follow(admin, r)


# --- bad input --------------------------------------------------------------------------


async def test_bad_rosters_change_nothing(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    admin = await admin_browser(hub)
    before = await api_state(hub)
    cases: list[tuple[list[Any], str]] = [
        ([("roster_text", "")], "Choose a CSV file or paste the roster first."),
        (
            [("roster_text", ROSTER), ("roster_file", ROSTER.encode(), "a.csv")],
            "Choose a file or paste the roster, not both.",
        ),
        (
            [("roster_file", "ann,é\n".encode("latin-1"), "a.csv")],
            "line 1: the roster is not UTF-8 text",
        ),
        ([("roster_file", b"PK\x03\x04\x14\x00binary", "a.xlsx")], "spreadsheet file"),
        ([("roster_text", "name,email\nann,a@b.c\n")], "line 1 must be a header row"),
        ([("roster_text", "full_name,email\nAnn,a@b.c\n")], "no username column"),
        ([("roster_text", "username\n")], "no users"),
        ([("roster_text", 'username\n"ann\n')], "not valid CSV"),
        ([("roster_file", b"username\nann\x00\n", "a.csv")], "not a CSV text file"),
    ]
    for fields, message in cases:
        r = await submit(admin, [("step", "preview"), *fields])
        assert r.code == 400, (fields, r.body[-1500:])
        text = r.body.decode()
        assert 'role="alert"' in text
        assert html.escape(message, quote=True) in text, (message, text[-3000:])
        assert "Apply this roster" not in text
    # the pasted text is kept, to fix it
    r = await submit(admin, [("step", "preview"), ("roster_text", "full_name\n<b>x</b>\n")])
    assert "full_name\n&lt;b&gt;x&lt;/b&gt;\n</textarea>" in r.body.decode()
    r = await submit(admin, [("step", "launch")])
    assert r.code == 400
    assert await api_state(hub) == before


async def test_rows_with_errors_are_never_applied(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    admin = await admin_browser(hub)
    roster = ROSTER + "bad name!,X,,\ndi,Di,not-an-email,\nann,Again,,\n"
    page = await preview(admin, roster)
    assert preview_rows(page)[3:] == [
        ("5", "bad name!", "Error"),
        ("6", "di", "Error"),
        ("7", "ann", "Error"),
    ]
    assert "is not allowed" in page
    assert "must contain exactly one @" in page
    assert "ann is already on line 2" in page
    assert "and 3 rows have errors" in page
    assert "Apply this roster" not in page
    assert "Nothing is imported while the roster has errors." in page
    # with the token of a roster without errors: refused, a new preview shows the errors
    good = await preview(admin)
    r = await apply(admin, good, roster=roster)
    assert r.code == 409
    assert "Apply this roster" not in r.body.decode()
    assert [u[0] for u in await hub.db.run(users_table)] == ["admin"]
    # and a plan with errors is never applied, even if it was the one previewed
    rows = roster_ops.parse_roster(roster)
    plan = await hub.db.run(roster_ops.plan_roster, hub.ctx, SYSTEM, rows)
    with pytest.raises(BadRequest, match="rows with errors"):
        await hub.db.run(apply_previewed, hub.ctx, SYSTEM, roster, plan_hash(plan))
    assert [u[0] for u in await hub.db.run(users_table)] == ["admin"]


async def test_a_roster_too_large(hub_factory: HubFactory) -> None:
    hub = await hub_factory(max_body_size=4096)
    admin = await admin_browser(hub)
    big = "username,full_name\n" + "".join(
        f"user{i:05d},Someone Long Named {i}\n" for i in range(400)
    )
    assert len(big) > 4096
    r = await submit(admin, [("step", "preview"), ("roster_text", big)])
    assert r.code == 413
    text = r.body.decode()
    assert "The roster is too large" in text
    assert "at most 4,096 bytes" in text
    assert 'role="alert"' in text
    # sent in chunks, without a length: the same
    body, content_type = multipart(
        [("_xsrf", await admin.xsrf()), ("step", "preview"), ("roster_text", big)]
    )

    async def chunks(write: Any) -> None:
        for start in range(0, len(body), 1000):
            await write(body[start : start + 1000])

    cookies = "; ".join(f"{k}={v}" for k, v in admin.cookies.items())
    r = await AsyncHTTPClient().fetch(
        admin.root + "hub/admin/import",
        method="POST",
        body_producer=chunks,
        headers={"Content-Type": content_type, "Cookie": cookies},
        raise_error=False,
    )
    assert r.code == 413
    assert "The roster is too large" in r.body.decode()
    assert [u[0] for u in await hub.db.run(users_table)] == ["admin"]
    # a roster within the limit is read
    assert "Create user" in await preview(admin, "username\nann\n")


async def test_without_the_xsrf_token_nothing_happens(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    admin = await admin_browser(hub)
    page = await preview(admin)
    fields = [("step", "apply"), ("token", hidden(page, "token")), ("roster", ROSTER)]
    for extra in ([], [("_xsrf", "2|00|forged|1")]):
        r = await submit(admin, [*extra, *fields], xsrf=False)
        assert r.code == 403
        r = await submit(admin, [*extra, ("step", "preview"), ("roster_text", ROSTER)], xsrf=False)
        assert r.code == 403
    r = await admin.request(
        "POST",
        "/hub/admin/import",
        body=b"not a multipart body",
        headers={"Content-Type": "multipart/form-data; boundary=zzz"},
    )
    assert r.code == 403
    assert [u[0] for u in await hub.db.run(users_table)] == ["admin"]


# --- apply what was previewed, or nothing -----------------------------------------------


async def test_apply_refuses_a_roster_changed_since_the_preview(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    admin = await admin_browser(hub)
    page = await preview(admin)
    changed = ROSTER + "mallory,,,admins\n"
    r = await apply(admin, page, roster=changed)
    assert r.code == 409
    text = r.body.decode()
    assert "The roster changed since the preview. Nothing was imported" in text
    # the preview of the roster as it is now, which can be applied in turn
    assert preview_rows(text)[-1] == ("5", "mallory", "Create user")
    assert [u[0] for u in await hub.db.run(users_table)] == ["admin"]
    assert (await hub.api("GET", "/groups")).json() == []
    # a token that is not valid, or someone else's, or none: preview again
    other = Browser(hub)
    await hub.add_user("root2", admin=True, password=PASSWORD)
    await other.login("root2")
    theirs = await preview(other)
    for token in ("", "garbage", hidden(theirs, "token"), hidden(page, "token")[:-4] + "AAAA"):
        r = await apply(admin, page, token=token)
        assert r.code == 400, token
        assert "This preview has expired or is not valid" in r.body.decode()
    assert [u[0] for u in await hub.db.run(users_table)] == ["admin", "root2"]
    # the genuine preview still applies
    assert "Roster imported" in await follow(admin, await apply(admin, page))


async def test_apply_refuses_when_the_hub_changed_since_the_preview(
    hub_factory: HubFactory,
) -> None:
    hub = await hub_factory()
    admin = await admin_browser(hub)
    page = await preview(admin)
    # meanwhile, someone creates bo with another name
    await hub.add_user("bo")
    r = await apply(admin, page)
    assert r.code == 409
    text = r.body.decode()
    assert "The hub changed since the preview" in text
    assert preview_rows(text)[1] == ("3", "bo", "Update")
    assert [u[0] for u in await hub.db.run(users_table)] == ["admin", "bo"]
    # the new preview applies
    assert "1 updated" in await follow(admin, await apply(admin, text))


async def test_free_text_names_are_shown_as_text(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    admin = await admin_browser(hub)
    roster = 'username,full_name,groups\nann,"<script>alert(1)</script>, \u202eLee",physics\n'
    page = await preview(admin, roster)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    await follow(admin, await apply(admin, page))
    group = (await admin.request("GET", "/hub/admin/groups/physics")).body.decode()
    assert "<script>alert" not in group
    assert "<td><bdi>&lt;script&gt;alert(1)&lt;/script&gt;, \u202eLee</bdi></td>" in group


# --- in a browser -----------------------------------------------------------------------


async def test_the_import_page_in_a_browser(hub_factory: HubFactory, shots: Path) -> None:
    hub: RunningHub = await hub_factory()
    roster = ROSTER + "bad name!,<script>x</script>,,\n"
    csv_file = shots / "class.csv"
    csv_file.write_text(roster)
    async with browser_page() as page:
        await page.goto(hub.url + "login?next=/hub/admin/import")
        await page.get_by_label("Username").fill("admin")
        await page.get_by_label("Password").fill(ADMIN_PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(hub.url + "admin/import")
        await assert_accessible(page)
        await page.screenshot(path=str(shots / "1-form.png"), full_page=True)
        await page.get_by_label("CSV file").set_input_files(str(csv_file))
        await page.get_by_role("button", name="Preview the import").click()
        await page.locator("#preview").wait_for()
        await assert_accessible(page)
        await page.screenshot(path=str(shots / "2-preview-errors.png"), full_page=True)
        assert await page.get_by_role("button", name="Apply this roster").count() == 0
        # fix the roster on the page and preview again
        await page.get_by_label("Roster (CSV)").fill(ROSTER)
        await page.get_by_role("button", name="Preview again").click()
        await page.get_by_role("button", name="Apply this roster").wait_for()
        await page.set_viewport_size({"width": 375, "height": 740})
        await assert_accessible(page)
        await page.screenshot(path=str(shots / "3-preview-phone.png"), full_page=True)
        assert await page.evaluate("document.documentElement.scrollWidth") <= 375
        await page.get_by_role("button", name="Apply this roster").click()
        await page.wait_for_url(hub.url + "admin/import")
        status = page.get_by_role("status").filter(has_text="Roster imported")
        assert "3 users created" in await status.inner_text()
        await assert_accessible(page)
        await page.screenshot(path=str(shots / "4-imported-phone.png"), full_page=True)
    assert [u[0] for u in await hub.db.run(users_table)] == ["admin", "ann", "bo", "cy"]

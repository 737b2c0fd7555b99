"""Branding for a class or lab: title, logo, colours and an announcement banner.

The checks (`hub.branding`), the hub refusing to start with a bad value (one
line naming the setting, exit 2, nothing created), the pages showing the
branding with everything escaped, the logo served from memory with its type
and a CSP that keeps an SVG from running script, and the branded pages in
Chromium: screenshots, axe-core at desktop and phone width.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient

from hub import branding
from hub.branding import BrandingError, contrast
from tests.a11y import assert_accessible
from tests.browser import browser_page
from tests.conftest import HubFactory
from tests.procs import run_atrium
from tests.test_pages import PASSWORD

SPAWNER = "tests.spawner.ProcessSpawner"

LOGO_SVG = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
    '<circle cx="32" cy="32" r="30" fill="#fde68a"/>'
    '<path d="M18 44 L32 16 L46 44 Z" fill="#14532d"/>'
    "<script>alert(1)</script></svg>\n"
)


def png(width: int = 4, height: int = 4, rgb: tuple[int, int, int] = (20, 83, 45)) -> bytes:
    """A real, tiny PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """SQLite only: the database backend does not matter here."""
    return sqlite_db_url


# --- the checks ------------------------------------------------------------------------


def test_colours_and_their_contrast() -> None:
    assert branding.parse_colour("x", "#ABC") == "#aabbcc"
    assert branding.parse_colour("x", " #14532D ") == "#14532d"
    assert contrast("#ffffff", "#000000") == pytest.approx(21)
    assert contrast("#2f5fd0", "#ffffff") == pytest.approx(5.72, abs=0.01)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert branding.check_brand_colour("#767676") == "#767676"  # 4.54:1, just enough
    for bad in ("#777777", "#ffcc00", "#fff"):
        with pytest.raises(BrandingError, match=r"below the 4\.5:1 WCAG AA asks for"):
            branding.check_brand_colour(bad)
    for bad in ("blue", "#12", "#1234567", "rgb(0,0,0)", "#ggg", "", "#fff;}"):
        with pytest.raises(BrandingError, match="must be a colour like"):
            branding.parse_colour("accent_colour", bad)
    # text on the accent colour: whichever of black and white reads better
    assert branding.Branding(accent_colour="#fde68a").accent_text == "#000000"
    assert branding.Branding(accent_colour="#14532d").accent_text == "#ffffff"
    for accent in ("#777777", "#808080", "#0000ff", "#ff0000", "#00ff00"):
        text = branding.Branding(accent_colour=accent).accent_text
        assert contrast(accent, text) >= 4.5, accent


def test_text_and_links() -> None:
    assert branding.check_title("  Physics 101  ") == "Physics 101"
    with pytest.raises(BrandingError, match="title must not be empty"):
        branding.check_title(" ")
    with pytest.raises(BrandingError, match="title is too long"):
        branding.check_title("x" * 81)
    with pytest.raises(BrandingError, match="announcement must be plain text on one line"):
        branding.check_announcement("line one\nline two")
    for good in ("", "https://example.edu/news?a=1&b=2", "http://x.example", "/hub/home"):
        assert branding.check_announcement_url(good) == good
    for bad in (
        "javascript:alert(1)",
        "//evil.example",
        "ftp://x.example",
        "https://",
        "https:///evil",
        "news",
        "/a b",
        '/a"b',
        "/\\evil",
    ):
        with pytest.raises(BrandingError, match="announcement_url must be"):
            branding.check_announcement_url(bad)


def test_logo_files(tmp_path: Path) -> None:
    files = {
        "logo.png": (png(), "image/png"),
        "logo.svg": (LOGO_SVG.encode(), "image/svg+xml"),
        "bare.svg": (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "image/svg+xml"),
        "logo.jpg": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32, "image/jpeg"),
        "logo.webp": (b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32, "image/webp"),
    }
    for name, (data, content_type) in files.items():
        (tmp_path / name).write_bytes(data)
        logo = branding.read_logo(str(tmp_path / name))
        assert logo is not None
        assert (logo.content_type, logo.data) == (content_type, data)
    assert branding.read_logo("") is None
    (tmp_path / "logo.gif").write_bytes(b"GIF89a" + b"\x00" * 20)
    (tmp_path / "png-named.png").write_bytes(b"<html><script>alert(1)</script></html>")
    (tmp_path / "big.png").write_bytes(png() + b"\x00" * branding.MAX_LOGO_BYTES)
    for path, message in (
        (tmp_path / "logo.gif", "is not a PNG, SVG, JPEG or WebP image"),
        (tmp_path / "png-named.png", "is not a PNG, SVG, JPEG or WebP image"),
        (tmp_path / "big.png", "a logo may be at most 1048576 bytes"),
        (tmp_path / "missing.png", "does not exist"),
        (tmp_path, "is not a file"),
    ):
        with pytest.raises(BrandingError, match=message):
            branding.read_logo(str(path))


# --- the hub refuses bad values ----------------------------------------------------------

BAD = [
    (["--Hub.brand_colour=#ffee00"], "brand_colour #ffee00: white text on it has a contrast of"),
    (["--Hub.brand_colour=blue"], "brand_colour must be a colour like #1d4ed8"),
    (["--Hub.accent_colour=#12"], "accent_colour must be a colour like"),
    (["--Hub.logo_file=missing.png"], "logo_file 'missing.png' does not exist"),
    (["--Hub.logo_file=logo.gif"], "logo_file 'logo.gif' is not a PNG, SVG, JPEG or WebP image"),
    (
        ["--Hub.logo_file=big.png"],
        "logo_file 'big.png' is 1048649 bytes; a logo may be at most 1048576",
    ),
    (["--Hub.announcement_url=javascript:alert(1)"], "announcement_url must be an http://"),
    (["--Hub.announcement_url=//evil.example"], "announcement_url must be an http://"),
    (["--Hub.title="], "title must not be empty"),
    (["--Hub.title=" + "x" * 81], "title is too long (81 characters, at most 80)"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[a[0][:40] for a, _ in BAD])
async def test_bad_branding_stops_the_hub(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "logo.gif").write_bytes(b"GIF89a" + b"\x00" * 20)
    (tmp_path / "big.png").write_bytes(png() + b"\x00" * branding.MAX_LOGO_BYTES)
    code, out, err = await run_atrium("--port", "0", *args, cwd=tmp_path, timeout=30)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err  # one line, naming the setting
    assert "Traceback" not in out + err
    assert not (tmp_path / "atrium.sqlite").exists()  # nothing was created


async def test_a_bad_announcement_in_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "atrium_config.py").write_text(
        "c.Hub.port = 0\nc.Hub.announcement = 'Exams\\x1b[31m on Friday'\n"
    )
    code, _out, err = await run_atrium(cwd=tmp_path, timeout=30)
    assert code == 2
    assert "announcement must be plain text on one line (no control characters)" in err


# --- the pages ---------------------------------------------------------------------------


async def test_pages_show_the_branding_escaped(hub_factory: HubFactory, tmp_path: Path) -> None:
    (tmp_path / "logo.png").write_bytes(png())
    hub = await hub_factory(
        title="Physics 101 <Lab>",
        logo_file=str(tmp_path / "logo.png"),
        brand_colour="#14532D",
        accent_colour="#fde68a",
        announcement='Exam on <b>Friday</b> & bring "pens"',
        announcement_url="https://example.edu/news?a=1&b=2",
    )
    client = AsyncHTTPClient()
    page = await client.fetch(hub.url + "login", raise_error=False)
    text = page.body.decode()
    assert "<title>Log in - Physics 101 &lt;Lab&gt;</title>" in text
    assert "<h1>Log in to Physics 101 &lt;Lab&gt;</h1>" in text
    assert '<img src="/hub/logo" alt=""><span>Physics 101 &lt;Lab&gt;</span>' in text
    assert "--brand: #14532d; --accent: #fde68a; --accent-text: #000000;" in text
    assert (
        '<aside class="announcement" aria-label="Announcement"><p>Exam on &lt;b&gt;Friday&lt;/b&gt;'
        " &amp; bring &#34;pens&#34;" in text
    )
    assert 'href="https://example.edu/news?a=1&amp;b=2">More' in text
    assert "<b>" not in text
    # every page has it, error pages too
    for path in ("error/503", "spawn/nobody"):
        other = await client.fetch(hub.url + path, raise_error=False)
        assert 'aria-label="Announcement"' in other.body.decode(), path
    # the logo: from memory, with its type, revalidated by ETag
    logo = await client.fetch(hub.url + "logo", raise_error=False)
    assert logo.code == 200
    assert logo.body == png()
    assert logo.headers["Content-Type"] == "image/png"
    assert logo.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in logo.headers["Content-Security-Policy"]
    again = await client.fetch(
        hub.url + "logo", headers={"If-None-Match": logo.headers["ETag"]}, raise_error=False
    )
    assert again.code == 304
    head = await client.fetch(hub.url + "logo", method="HEAD", raise_error=False)
    assert (head.code, head.headers["Content-Type"]) == (200, "image/png")
    post = await client.fetch(hub.url + "logo", method="POST", body=b"", raise_error=False)
    assert post.code == 405


async def test_an_svg_logo_runs_no_script(hub_factory: HubFactory, tmp_path: Path) -> None:
    (tmp_path / "logo.svg").write_text(LOGO_SVG)
    hub = await hub_factory(logo_file=str(tmp_path / "logo.svg"))
    logo = await AsyncHTTPClient().fetch(hub.url + "logo")
    assert logo.headers["Content-Type"] == "image/svg+xml"
    csp = logo.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "sandbox" in csp
    assert "script-src" not in csp
    async with browser_page() as page:
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        response = await page.goto(hub.url + "logo")
        assert response.status == 200
        assert await page.evaluate("document.documentElement.localName") == "svg"
        assert dialogs == []  # the SVG's own script did not run


async def test_no_logo(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    r = await AsyncHTTPClient().fetch(hub.url + "logo", raise_error=False)
    assert r.code == 404
    page = (await AsyncHTTPClient().fetch(hub.url + "login")).body.decode()
    assert "<title>Log in - Atrium</title>" in page
    assert "/hub/logo" not in page
    assert 'aria-label="Announcement"' not in page


async def test_the_branded_pages_in_a_browser(
    hub_factory: HubFactory, tmp_path: Path, shots: Path
) -> None:
    (tmp_path / "logo.svg").write_text(LOGO_SVG)
    hub = await hub_factory(
        spawner_class=SPAWNER,
        allow_named_servers=True,
        title="Physics 101",
        logo_file=str(tmp_path / "logo.svg"),
        brand_colour="#14532d",
        accent_colour="#fde68a",
        announcement="The hub restarts on Friday at 18:00; save your work before then.",
        announcement_url="/hub/home",
    )
    await hub.add_user("ann", password=PASSWORD)
    async with browser_page() as page:
        await page.goto(hub.url + "login")
        assert await page.title() == "Log in - Physics 101"
        banner = page.get_by_role("complementary", name="Announcement")
        assert "The hub restarts on Friday" in await banner.inner_text()
        assert await banner.get_by_role("link", name="More about this announcement").is_visible()
        header = page.locator("header")
        assert await header.evaluate("e => getComputedStyle(e).backgroundColor") == (
            "rgb(20, 83, 45)"
        )
        logo = page.locator("header img")
        assert await logo.evaluate("img => img.complete && img.naturalWidth") == 64
        await page.screenshot(path=str(shots / "1-login.png"))
        await assert_accessible(page)
        await page.get_by_label("Username").fill("ann")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url("**/hub/spawn/ann")
        button = page.get_by_role("button", name="Start my server")
        assert await button.evaluate("b => getComputedStyle(b).backgroundColor") == (
            "rgb(20, 83, 45)"
        )
        await page.screenshot(path=str(shots / "2-spawn.png"))
        await assert_accessible(page)
        for path, name in (("home", "3-home"), ("token", "4-token"), ("error/503", "5-error")):
            await page.goto(hub.url + path)
            await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
            await assert_accessible(page)
            await page.set_viewport_size({"width": 375, "height": 740})
            await page.screenshot(path=str(shots / f"{name}-phone.png"), full_page=True)
            await assert_accessible(page)
            await page.set_viewport_size({"width": 1100, "height": 750})

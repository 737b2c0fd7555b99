"""A class's or lab's look: title, logo, colours and an announcement banner.

The values come from `c.Hub.title`, `logo_file`, `brand_colour`,
`accent_colour`, `announcement` and `announcement_url` (`hub.settings`, whose
validators call the checks here, so a bad value stops the hub at start-up with
one line naming the setting). `page.html` shows them on every page; the logo is
read once at start-up and served from memory by `hub.pages.logo`.

Colours must stay readable: white text on the brand colour (the header and
buttons) must reach WCAG AA's 4.5:1, and text on the accent colour (the banner)
is black or white, whichever contrasts more (one of them always reaches 4.5:1).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_TITLE = "Atrium"
DEFAULT_BRAND = "#2f5fd0"
DEFAULT_ACCENT = "#f2b705"
MAX_TITLE = 80
MAX_ANNOUNCEMENT = 1000
MAX_URL = 2000
MAX_LOGO_BYTES = 1024 * 1024
# WCAG 2.x AA for normal text
MIN_CONTRAST = 4.5

_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
# an XML declaration, comments and a doctype may come before the <svg> element
_SVG_START = re.compile(
    rb"^(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*(?:<!DOCTYPE[^>]*>\s*)?<svg[\s>]", re.S
)


class BrandingError(ValueError):
    """A branding setting is not usable; the message names the setting."""


@dataclass(frozen=True)
class Logo:
    data: bytes
    content_type: str
    etag: str


@dataclass(frozen=True)
class Branding:
    """What pages show of the hub's branding (all values already checked)."""

    title: str = DEFAULT_TITLE
    brand_colour: str = DEFAULT_BRAND
    accent_colour: str = DEFAULT_ACCENT
    announcement: str = ""
    announcement_url: str = ""
    logo: Logo | None = None

    @property
    def accent_text(self) -> str:
        """Black or white, whichever reads better on the accent colour."""
        on_white = contrast(self.accent_colour, "#ffffff")
        on_black = contrast(self.accent_colour, "#000000")
        return "#ffffff" if on_white >= on_black else "#000000"


# --- colours -----------------------------------------------------------------------


def parse_colour(setting: str, value: str) -> str:
    """`#rgb` or `#rrggbb`, returned as lower-case `#rrggbb`."""
    text = value.strip()
    if not _HEX.fullmatch(text):
        raise BrandingError(f"{setting} must be a colour like #1d4ed8 or #14c, not {value[:40]!r}")
    digits = text[1:].lower()
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return "#" + digits


def _luminance(colour: str) -> float:
    """WCAG relative luminance of `#rrggbb`."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two `#rrggbb` colours (1 to 21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def check_brand_colour(value: str) -> str:
    colour = parse_colour("brand_colour", value)
    ratio = contrast(colour, "#ffffff")
    if ratio < MIN_CONTRAST:
        raise BrandingError(
            f"brand_colour {colour}: white text on it has a contrast of {ratio:.1f}:1, below "
            f"the {MIN_CONTRAST}:1 WCAG AA asks for; choose a darker colour"
        )
    return colour


# --- text and links ----------------------------------------------------------------


def _printable(setting: str, value: str, limit: int) -> str:
    text = value.strip()
    if len(text) > limit:
        raise BrandingError(f"{setting} is too long ({len(text)} characters, at most {limit})")
    if not text.isprintable():
        raise BrandingError(f"{setting} must be plain text on one line (no control characters)")
    return text


def check_title(value: str) -> str:
    text = _printable("title", value, MAX_TITLE)
    if not text:
        raise BrandingError("title must not be empty")
    return text


def check_announcement(value: str) -> str:
    return _printable("announcement", value, MAX_ANNOUNCEMENT)


def check_announcement_url(value: str) -> str:
    """'' , an http(s) URL with a host, or a path on this site (`/...`, not `//...`)."""
    text = value.strip()
    if not text:
        return ""
    bad = BrandingError(
        "announcement_url must be an http:// or https:// URL or a path on this site "
        f"starting with '/', not {text[:80]!r}"
    )
    if len(text) > MAX_URL or not text.isprintable() or any(c in text for c in " \\\"'<>"):
        raise bad
    if text.startswith("/"):
        if text.startswith("//"):
            raise bad
        return text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad
    return text


# --- the logo ----------------------------------------------------------------------


def _sniff(head: bytes) -> str | None:
    """The image type of a file from its first bytes; None if not an allowed one."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if _SVG_START.match(head.lstrip(b"\xef\xbb\xbf \t\r\n")):
        return "image/svg+xml"
    return None


def read_logo(path_text: str) -> Logo | None:
    """The logo at `path_text` ('' for none): an existing PNG, SVG, JPEG or WebP file of
    at most MAX_LOGO_BYTES, its type told by its content."""
    if not path_text:
        return None
    path = Path(path_text).expanduser()
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise BrandingError(f"logo_file {path_text!r} does not exist") from None
    except OSError as e:
        raise BrandingError(f"logo_file {path_text!r} cannot be read: {e.strerror}") from None
    if not path.is_file():
        raise BrandingError(f"logo_file {path_text!r} is not a file")
    if size > MAX_LOGO_BYTES:
        raise BrandingError(
            f"logo_file {path_text!r} is {size} bytes; a logo may be at most {MAX_LOGO_BYTES} bytes"
        )
    try:
        data = path.read_bytes()[: MAX_LOGO_BYTES + 1]
    except OSError as e:
        raise BrandingError(f"logo_file {path_text!r} cannot be read: {e.strerror}") from None
    if len(data) > MAX_LOGO_BYTES:
        raise BrandingError(f"logo_file {path_text!r} grew beyond {MAX_LOGO_BYTES} bytes")
    content_type = _sniff(data[:2048])
    if content_type is None:
        raise BrandingError(f"logo_file {path_text!r} is not a PNG, SVG, JPEG or WebP image")
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    return Logo(data, content_type, etag)

"""A real browser for the tests: Playwright driving Debian's Chromium.

`playwright install` cannot download browsers here, so the tests launch
/usr/bin/chromium (installed by scripts/test.sh) with the flags below. A
missing browser or Playwright fails the test in CI and skips it elsewhere.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.conftest import missing_part

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@asynccontextmanager
async def browser_page() -> AsyncIterator[Any]:
    """A fresh page in a fresh Chromium; closed afterwards."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing_part("Playwright (pip install -e '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        missing_part("Chromium at /usr/bin/chromium (apt-get install chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context(viewport={"width": 1100, "height": 750})
            yield await context.new_page()
        finally:
            await browser.close()


def watch_console(page: Any) -> list[str]:
    """Collects the page's script errors and anything its CSP blocked, as they come (an
    HTTP error answer, which a page shows itself, is not one)."""
    messages: list[str] = []
    page.on("pageerror", lambda error: messages.append(str(error)))

    def console(message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            messages.append(message.text)

    page.on("console", console)
    return messages


LAB_TIMEOUT = 60_000  # ms; JupyterLab's first load on a busy 2-core machine


async def run_in_new_notebook(page: Any, code: str, shots: Path, launcher: str, ran: str) -> str:
    """In JupyterLab (the page is on its way there): a new Python notebook from the
    launcher, once its kernel is idle `code` run in the first cell; the cell's output
    text. Screenshots `launcher` and `ran` (file names) go to `shots`."""
    card = page.locator('.jp-LauncherCard[data-category="Notebook"]').first
    await card.wait_for(timeout=LAB_TIMEOUT)
    await page.screenshot(path=str(shots / launcher))
    await card.click()
    editor = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first
    await editor.wait_for(timeout=LAB_TIMEOUT)
    # the kernel is up once the status bar says so
    await page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for(
        timeout=LAB_TIMEOUT
    )
    await editor.click()
    await page.keyboard.type(code)
    await page.keyboard.press("Shift+Enter")
    output = page.locator(".jp-NotebookPanel .jp-OutputArea-output").first
    try:
        await output.wait_for(timeout=LAB_TIMEOUT)
    finally:
        await page.screenshot(path=str(shots / ran))
    return str(await output.inner_text()).strip()

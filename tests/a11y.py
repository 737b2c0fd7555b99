"""Accessibility checks in the real browser: axe-core (from npm, `tests/js`) run on a page.

`assert_accessible(page)` runs axe's WCAG 2.1 A and AA rules on what the page
shows now and fails with each violation (rule, impact, the offending elements).
axe is evaluated through the DevTools protocol, so the page's own CSP, which
allows no injected script, stays in force. scripts/test.sh installs axe with
`npm ci --prefix tests/js`; missing, it fails in CI and skips elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import missing_part

AXE = Path(__file__).resolve().parent / "js" / "node_modules" / "axe-core" / "axe.min.js"
RULESETS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    if not AXE.is_file():
        missing_part("axe-core (npm ci --prefix tests/js)")
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text())
    result = await page.evaluate(
        "(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})", RULESETS
    )
    return list(result["violations"])


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        targets = ", ".join(str(n["target"]) for n in v["nodes"][:5])
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} -- {targets}")
    return "\n".join(lines)


async def assert_accessible(page: Any) -> None:
    violations = await axe_violations(page)
    assert not violations, "accessibility violations:\n" + describe(violations)

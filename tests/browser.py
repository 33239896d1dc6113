"""A headless browser for the tests of the stack's pages: Debian's chromium (/usr/bin/chromium, which `make test`
installs) driven by the playwright Python package; Playwright's own browser download is never used."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@contextmanager
def chromium() -> Iterator[object]:
    """Debian's chromium under Playwright; a missing one fails the test (not a skip) and says how to install it."""
    if not CHROMIUM.exists():
        pytest.fail(f"Debian's chromium is not installed ({CHROMIUM} is missing); `make test` installs it, or run "
                    "`bash stack/runner/os-packages.sh chromium:chromium`", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright Python package is missing; `make test` installs it (the dev extra of "
                    "pyproject.toml)", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()

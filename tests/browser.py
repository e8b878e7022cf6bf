"""A real headless Chromium for tests that open pages rag writes or serves (`rag map`, `rag serve`).

Playwright (from pip) drives Debian's `chromium` (apt-get install chromium; .ci/run installs it):
no browser is downloaded. `--no-sandbox` because CI runs as root, where Chromium's sandbox refuses
to start. Use the `browser_page` fixture (import it into a test module or conftest.py):

    # tests/conftest.py registers the fixtures once for the session

    def test_x(browser_page):
        browser_page.goto(url)

A missing chromium or Playwright fails the test with the command that installs it; it is never
skipped, so a CI run without a browser cannot pass silently.
"""

from __future__ import annotations

import shutil

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


def chromium_path() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no chromium on PATH: run `apt-get install -y chromium` (as root), as .ci/run does")


@pytest.fixture(scope="session")
def chromium():
    """One browser per test session; pages are cheap, starting Chromium is not."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: `pip install -e '.[test]'`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=LAUNCH_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium):
    """A fresh page (own cookies and storage) that records script errors in `page.errors`."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    context.close()

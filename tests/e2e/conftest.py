"""Browser tests: Playwright driving Debian's Chromium on a phone-sized screen.

Chromium comes from the system (`/usr/bin/chromium`, installed by .ci/run with apt), never
from `playwright install`. Off CI, a machine without it skips these tests; on CI a missing
browser fails them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.cache import cache

# Playwright's sync API keeps an event loop running in the test's thread; Django would
# then refuse ORM calls from the test itself (setting up data, checking results).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"width": 390, "height": 844}
# A phone's Chrome: headless Chromium's own user agent says "HeadlessChrome", which the
# click log rightly counts as a bot.
PHONE_USER_AGENT = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36"
)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    # The join rate limit counts in the cache, and every browser here is 127.0.0.1.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is not at {CHROMIUM}; .ci/run installs it with apt")
        pytest.skip(f"Chromium is not at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()

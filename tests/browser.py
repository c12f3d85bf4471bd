"""A headless Chromium page (Playwright on the system chromium) that records console errors, page errors,
failed requests and every request, for tests of pages that must open offline from file://."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NO_CHROMIUM = "no chromium binary (Debian: apt-get install chromium)"


@contextmanager
def watched_page(**page_options) -> Iterator[tuple]:
    """(page, problems, requests): problems collects console errors, page errors, failed requests and HTTP error
    responses; `page_options` go to `new_page` (e.g. viewport)."""
    from playwright.sync_api import sync_playwright

    problems, requests = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(**page_options)
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}"))
        page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
        page.on("request", lambda r: requests.append(r.url))
        try:
            yield page, problems, requests
        finally:
            browser.close()

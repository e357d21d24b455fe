"""Debian's chromium, headless, driven by Playwright: no browser is downloaded anywhere."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def page(**context: Any) -> Iterator[Any]:
    """A page in a new headless Chromium; ``context`` goes to ``new_context`` (offline=True...)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser.new_context(**context).new_page()
        finally:
            browser.close()

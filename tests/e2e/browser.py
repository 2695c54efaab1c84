"""Chromium for e2e browser tests: Debian's /usr/bin/chromium driven by Playwright.

Never run `playwright install` (it downloads a browser build, which this environment
cannot fetch); the system package is installed with
`apt-get install -y --no-install-recommends chromium chromium-driver`.
"""

from __future__ import annotations

import os

CHROMIUM = "/usr/bin/chromium"

# Quiet, hermetic headless Chromium: no sandbox (root in a container), no GPU, no QUIC,
# and no background traffic (updates, sync, ...) to anything but the test servers.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_available() -> str | None:
    """None if Chromium can be launched, else why not (a pytest skip reason)."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium"
    return None


def launch_chromium(playwright):
    """A headless Browser from a `sync_playwright()` (or async) Playwright object."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)

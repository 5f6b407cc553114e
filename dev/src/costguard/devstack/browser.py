"""Headless Chromium as the browser tests and ``make e2e`` start it (Debian's, as root).

Without the background-networking flags Chromium keeps trying hosts that a closed network
refuses; ``--no-sandbox`` because it runs as root.
"""

from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

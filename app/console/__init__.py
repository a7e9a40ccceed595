"""The treasury console (`/console/`) and the offline API reference (`/docs`).

Both are pages for people, served from files in this package: templates, the console's own
script and style, and vendored, pinned assets (swagger-ui-dist, uPlot; see VENDORED.md). The
console is a frontend like any other: its script reads the public API from the browser, so
nothing here imports the services. What the server adds is only what a page cannot learn by
itself: whether it must ask for a key (`/console/config.json`, rendered from the settings,
never carrying a secret).
"""

from __future__ import annotations

from app.console.pages import install_console, install_docs

__all__ = ["install_console", "install_docs"]

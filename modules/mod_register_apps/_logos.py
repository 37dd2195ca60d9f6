"""Logos: a monogram per app (its initials on a coloured square), drawn here.

The apps' own logos are their owners' artwork under various licences and trademarks; this
server ships none of them. An operator who wants the real logos sets ``image`` to their URL.
"""

from __future__ import annotations

import hashlib
import html

# Dark backgrounds: white text on each has a contrast ratio above 7:1 (WCAG AAA).
PALETTE = ("#1f4e79", "#6a2c7d", "#0f5f52", "#7f3510", "#2c5a1d", "#861d3c", "#363680", "#4d4d4d")


def initials(name: str) -> str:
    words = [w for w in name.replace("-", " ").split() if w[:1].isalnum()]
    letters = "".join(w[0] for w in words[:2]).upper()
    return letters or "?"


def monogram(name: str, key: str) -> str:
    """An SVG image of ``name``'s initials; ``key`` (the app id) picks the colour."""
    colour = PALETTE[hashlib.sha256(key.encode()).digest()[0] % len(PALETTE)]
    text = html.escape(initials(name))
    size = 30 if len(text) == 1 else 24
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="64" height="64"'
        f' role="img" aria-label="{html.escape(name)}">'
        f'<rect width="64" height="64" rx="14" fill="{colour}"/>'
        f'<text x="32" y="{32 + size * 0.36:.0f}" text-anchor="middle" fill="#ffffff"'
        f' font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'
        f' font-size="{size}" font-weight="700">{text}</text></svg>'
    )

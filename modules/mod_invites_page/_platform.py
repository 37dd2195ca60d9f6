"""The visitor's platform, from the User-Agent, as Prosody's page script (platform.js) names
it: the page lists the apps for it first (Prosody hides the others with a script)."""

from __future__ import annotations


def platform_of(user_agent: str) -> str | None:
    ua = user_agent.lower()
    if "android" in ua:
        return "Android"
    if any(device in ua for device in ("iphone", "ipad", "ipod")):
        return "iOS"
    if "haiku" in ua:
        return "Haiku"
    if "windows" in ua:
        return "Windows"
    if "macintosh" in ua or "mac os x" in ua:
        return "macOS"
    if "linux" in ua or "x11" in ua:
        return "Linux"
    return None

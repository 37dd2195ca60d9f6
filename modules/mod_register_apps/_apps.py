"""The app list as data: the shape of a ``site_apps`` entry (Prosody's fields) and Prosody's
default list (prosody-modules' mod_register_apps, 2024-01).

Differences from Prosody's defaults, so that the pages load nothing from elsewhere: the store
badges (images on play.google.com and apple.com) are text buttons, and the logos are
monograms this server draws (``_logos.py``), not the apps' own artwork.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec


class Button(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    text: str | None = None
    image: str | None = None
    target: str | None = None
    alttext: str | None = None


class Download(msgspec.Struct, forbid_unknown_fields=True):
    text: str | None = None
    buttons: list[Button] = msgspec.field(default_factory=list)


class Setup(msgspec.Struct, forbid_unknown_fields=True):
    text: str | None = None


class App(msgspec.Struct, forbid_unknown_fields=True):
    """One entry of ``site_apps``, with Prosody's field names."""

    name: str
    text: str = ""
    image: str | None = None  # an absolute URL, or a path under /register_apps/ ("assets/…")
    imagetext: str | None = None  # the logo's alt text
    link: str | None = None
    platforms: list[str] = msgspec.field(default_factory=list)
    supports_preauth_uri: bool = False
    magic_link_format: str | None = None  # e.g. "{app.link!}&referrer={invite.uri}"
    download: Download | None = None
    setup: Setup | None = None
    login_link_format: str | None = None  # where web registration sends the new user
    select_text: str | None = None  # the card's button (default "Select")
    id: str | None = None  # default: from the name


def app_id(app: App) -> str:
    """Prosody's id: the name with each run of characters other than ASCII letters and digits
    replaced by "-", lower case ("Siskin IM" -> "siskin-im")."""
    return app.id or re.sub(r"[^A-Za-z0-9]+", "-", app.name).lower()


PLAY = "https://play.google.com/store/apps/details?id="
MAGIC = "{app.link!}&referrer={invite.uri}"

DEFAULT_APPS: list[dict[str, Any]] = [
    {
        "name": "Conversations",
        "text": "Conversations is a Jabber/XMPP client for Android 4.0+ smartphones that has"
        " been optimized to provide a unique mobile experience.",
        "image": "assets/logos/conversations.svg",
        "link": PLAY + "eu.siacs.conversations",
        "platforms": ["Android"],
        "supports_preauth_uri": True,
        "magic_link_format": MAGIC,
        "download": {
            "buttons": [{"text": "Get it on Google Play", "url": PLAY + "eu.siacs.conversations"}]
        },
    },
    {
        "name": "yaxim",
        "text": "A lean Jabber/XMPP client for Android. It aims at usability, low overhead and"
        " security, and works on low-end Android devices starting with Android 4.0.",
        "image": "assets/logos/yaxim.svg",
        "link": PLAY + "org.yaxim.androidclient",
        "platforms": ["Android"],
        "supports_preauth_uri": True,
        "magic_link_format": MAGIC,
        "download": {
            "buttons": [{"text": "Get it on Google Play", "url": PLAY + "org.yaxim.androidclient"}]
        },
    },
    {
        "name": "Siskin IM",
        "text": "A lightweight and powerful XMPP client for iPhone and iPad. It provides an easy"
        " way to talk and share moments with your friends.",
        "image": "assets/logos/siskin-im.svg",
        "link": "https://apps.apple.com/us/app/siskin-im/id1153516838",
        "platforms": ["iOS"],
        "supports_preauth_uri": True,
        "download": {
            "buttons": [
                {
                    "text": "Download on the App Store",
                    "url": "https://apps.apple.com/us/app/siskin-im/id1153516838",
                    "target": "_blank",
                }
            ]
        },
    },
    {
        "name": "Beagle IM",
        "text": "Beagle IM by Tigase, Inc. is a lightweight and powerful XMPP client for macOS.",
        "image": "assets/logos/beagle-im.svg",
        "link": "https://apps.apple.com/us/app/beagle-im/id1445349494",
        "platforms": ["macOS"],
        "download": {
            "buttons": [
                {
                    "text": "Download from Mac App Store",
                    "url": "https://apps.apple.com/us/app/beagle-im/id1445349494",
                    "target": "_blank",
                }
            ]
        },
        "setup": {
            "text": "Launch Beagle IM, and select 'Yes' to add a new account. Click the '+'"
            " button under the empty account list and then enter your credentials."
        },
    },
    {
        "name": "Dino",
        "text": "A modern open-source chat client for the desktop. It focuses on providing a"
        " clean and reliable Jabber/XMPP experience while having your privacy in mind.",
        "image": "assets/logos/dino.svg",
        "link": "https://dino.im/",
        "platforms": ["Linux"],
        "download": {
            "text": "Click the button to open the Dino website where you can download and"
            " install it on your PC.",
            "buttons": [
                {
                    "text": "Download Dino for Linux",
                    "url": "https://dino.im/#download",
                    "target": "_blank",
                }
            ],
        },
    },
    {
        "name": "Gajim",
        "text": "A fully-featured desktop chat client for Windows and Linux.",
        "image": "assets/logos/gajim.svg",
        "link": "https://gajim.org/",
        "platforms": ["Windows", "Linux"],
        "download": {
            "buttons": [
                {"text": "Download Gajim", "url": "https://gajim.org/download/", "target": "_blank"}
            ]
        },
    },
    {
        "name": "Monal",
        "text": "A modern open-source chat client for iPhone and iPad. It is easy to use and has"
        " a clean user interface.",
        "image": "assets/logos/monal.svg",
        "link": "https://monal-im.org/",
        "platforms": ["iOS"],
        "supports_preauth_uri": True,
        "download": {
            "buttons": [
                {
                    "text": "Download on the App Store",
                    "url": "https://apps.apple.com/app/id317711500",
                    "target": "_blank",
                }
            ]
        },
    },
    {  # the same id as the one before: Prosody drops it, and so does this list
        "name": "Monal",
        "text": "A modern open-source chat client for Mac. It is easy to use and has a clean"
        " user interface.",
        "image": "assets/logos/monal.svg",
        "link": "https://monal-im.org/",
        "platforms": ["macOS"],
        "supports_preauth_uri": True,
        "download": {
            "buttons": [
                {
                    "text": "Download on the Mac App Store",
                    "url": "https://apps.apple.com/app/id1637078500",
                    "target": "_blank",
                }
            ]
        },
    },
    {
        "name": "Renga",
        "text": "XMPP client for Haiku",
        "image": "assets/logos/renga.svg",
        "link": "https://pulkomandy.tk/projects/renga",
        "platforms": ["Haiku"],
        "download": {
            "buttons": [
                {
                    "text": "Download Renga for Haiku",
                    "url": "https://depot.haiku-os.org/#!/pkg/renga?bcguid=bc233-PQIA",
                    "target": "_blank",
                }
            ]
        },
    },
]


def site_apps(
    configured: list[App] | None, show: list[str] | None, hide: list[str] | None
) -> list[App]:
    """The apps to offer, in order: ``configured`` (or the defaults), each with its id, those
    not in ``show`` (when given) or in ``hide`` left out, and of several with one id the first
    kept (as Prosody does)."""
    apps = configured if configured is not None else default_apps()
    shown, hidden = (set(show) if show is not None else None), set(hide or ())
    kept: dict[str, App] = {}
    for app in apps:
        ident = app_id(app)
        if ident in kept or ident in hidden or (shown is not None and ident not in shown):
            continue
        kept[ident] = msgspec.structs.replace(app, id=ident)
    return list(kept.values())


def default_apps() -> list[App]:
    return msgspec.convert(DEFAULT_APPS, list[App])

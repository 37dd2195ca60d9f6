"""The pages, as Prosody's mod_invites_page words them (html/invite.html, client.html,
invite_invalid.html), without Bootstrap or scripts. Every value is escaped here; links come in
ready (relative to the page, or absolute).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minixmpp.web import LinkButton, link_buttons, page
from minixmpp.web import escape as e

NETWORK = "part of the XMPP secure and decentralized messaging network"


@dataclass
class Card:
    """An app as a card shows it."""

    id: str
    name: str
    text: str
    logo: str | None  # link
    logo_alt: str
    platforms: list[str]
    proceed: str  # the card's button: a magic link, the setup page or web registration
    select_text: str = "Select"
    match: bool = False  # made for the visitor's platform


@dataclass
class Download:
    text: str | None
    buttons: list[LinkButton] = field(default_factory=list)


@dataclass
class Common:
    site_name: str
    stylesheet: str  # link
    inviter: str | None = None
    qr_svg: str | None = None


def invited(c: Common) -> str:
    who = f"with {e(c.inviter)} " if c.inviter else ""
    return f"<p>You have been invited to chat {who}on {e(c.site_name)}, {NETWORK}.</p>"


def qr_aside(c: Common) -> str:
    if c.qr_svg is None:
        return ""
    return (
        '<aside class="qr" aria-label="Open this invite on another device">'
        "<p><strong>Tip:</strong> You can open this invite on your mobile device by scanning a"
        f" barcode with your camera.</p>{c.qr_svg}</aside>\n"
    )


def card(app: Card, *, button: bool = True) -> str:
    logo = (
        f'<img class="logo" src="{e(app.logo)}" alt="{e(app.logo_alt)}" width="64" height="64">'
        if app.logo
        else ""
    )
    badges = "".join(f'<span class="badge">{e(p)}</span>' for p in app.platforms)
    action = (
        f'<a class="button" href="{e(app.proceed)}" data-testid="select-{e(app.id)}">'
        f'{e(app.select_text)}<span class="visually-hidden"> {e(app.name)}</span></a>'
        if button
        else ""
    )
    match = " match" if app.match else ""
    return (
        f'<li class="app{match}" id="app-{e(app.id)}">{logo}<div class="body">'
        f"<h3>{e(app.name)}</h3><p>{badges}</p><p>{e(app.text)}</p>{action}</div></li>"
    )


def landing(
    c: Common,
    cards: list[Card],
    *,
    uri: str,
    register: str | None,
    platform: str | None,
    contact_jid: str | None,
) -> str:
    """The landing page of a valid invite. ``register``: the manual registration link (None
    for a contact invite that allows none); ``contact_jid``: the inviter, for such an invite."""
    site = e(c.site_name)
    parts = [f"<h1>Invite to {site}</h1>", qr_aside(c), invited(c)]
    if contact_jid is not None and register is None:
        parts.append(
            f'<p>Already using an XMPP app? <a class="button" href="{e(uri)}"'
            f' data-testid="add-contact">Add {e(contact_jid)} to your contacts</a></p>'
        )
    parts.append("<h2>Get started</h2>")
    parts.append("<p>To get started, you need to install an app for your platform:</p>")
    if platform is not None and any(x.match for x in cards):
        parts.append(f'<p class="muted">Apps for {e(platform)} are listed first.</p>')
    parts.append('<ul class="apps">' + "".join(card(x) for x in cards) + "</ul>")
    parts.append("<h2>Other software</h2>")
    if register is not None:
        parts.append(
            f"<p>You can connect to {site} using any XMPP-compatible software. If your"
            " preferred software is not listed above, you may still"
            f' <a href="{e(register)}" data-testid="register-manually">register an account'
            " manually</a>.</p>"
        )
    else:
        parts.append(
            "<p>You can use any XMPP-compatible software: add"
            f" <strong>{e(contact_jid)}</strong> to your contacts in it.</p>"
        )
    return page(f"Invite to {site}", "\n".join(parts), stylesheet=c.stylesheet,
                head=f'<link rel="alternate" href="{e(uri)}">\n')  # fmt: skip


def reset(c: Common, *, jid: str, uri: str, form: str) -> str:
    """The landing page of a password-reset invite."""
    site = e(c.site_name)
    body = (
        f"<h1>Reset your password on {site}</h1>\n"
        f"<p>This link lets you choose a new password for <strong>{e(jid)}</strong>.</p>\n"
        f'<p><a class="button" href="{e(form)}" data-testid="reset-password">'
        "Choose a new password</a></p>"
    )
    return page(f"Password reset on {site}", body, stylesheet=c.stylesheet,
                head=f'<link rel="alternate" href="{e(uri)}">\n')  # fmt: skip


def setup(
    c: Common,
    app: Card,
    download: Download,
    *,
    uri: str,
    preauth: bool,
    register: str | None,
    contact_jid: str | None,
) -> str:
    """Prosody's per-app page: install the app, then open the invite in it."""
    site, name = e(c.site_name), e(app.name)
    parts = [f"<h1>Join {site} with {name}</h1>", qr_aside(c), invited(c)]
    parts.append(f"<p>You can start chatting right away with {name}. Let's get started!</p>")
    parts.append('<ul class="apps">' + card(app, button=False) + "</ul>")
    parts.append(f"<h2>Step 1: Install {name}</h2>")
    parts.append(f"<p>{e(download.text or f'Download and install {app.name} below:')}</p>")
    parts.append(link_buttons(download.buttons))
    parts.append(
        f"<p>After successfully installing {name}, come back to this page and"
        " <strong>continue with Step 2</strong>.</p>"
    )
    contact_only = register is None and contact_jid is not None
    if preauth:
        parts.append(
            f"<h2>Step 2: Add {e(contact_jid)} to your contacts</h2>" if contact_only
            else "<h2>Step 2: Activate your account</h2>"
        )  # fmt: skip
        parts.append(
            "<p>Installed ok? Great! <strong>Click or tap the button below</strong> to accept"
            + (" your invite:</p>" if contact_only else
               " your invite and continue with your account setup:</p>")
        )  # fmt: skip
        parts.append(
            f'<p><a class="button" href="{e(uri)}" id="uri-cta" data-testid="accept-invite">'
            f"Accept invite using {name}</a></p>"
        )
        parts.append(
            f"<p>After clicking the button you will be taken to {name}.</p>" if contact_only
            else f"<p>After clicking the button you will be taken to {name} to finish setting"
            f" up your new {site} account.</p>"
        )  # fmt: skip
    elif register is not None:
        parts.append("<h2>Step 2: Create your account</h2>")
        parts.append(
            f"<p>Create your account on {site} here, then sign in to it with {name}:</p>"
            f'<p><a class="button" href="{e(register)}" data-testid="register">'
            "Create an account</a></p>"
        )
    else:
        parts.append(f"<h2>Step 2: Add {e(contact_jid)} to your contacts</h2>")
        parts.append(f"<p>In {name}, add <strong>{e(contact_jid)}</strong> to your contacts.</p>")
    return page(f"Invite to {site}", "\n".join(parts), stylesheet=c.stylesheet)


def expired(c: Common) -> str:
    site = e(c.site_name)
    body = (
        f"<h1>Invite to {site}</h1>\n<h2>Invite expired</h2>\n"
        "<p>Sorry, it looks like this invite code has expired!</p>"
    )
    return page(f"Invite to {site}", body, stylesheet=c.stylesheet)


def unknown_app(c: Common) -> str:
    body = "<h1>Unknown app</h1>\n<p>This server does not list that app.</p>"
    return page("Unknown app", body, stylesheet=c.stylesheet)

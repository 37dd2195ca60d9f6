"""The registration pages, as Prosody's mod_invites_register_web words them (html/register.html,
register_error.html, register_success.html, register_success_setup.html), without Bootstrap or
scripts, plus the reset variants. Every value is escaped here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minixmpp.web import LinkButton, link_buttons, page
from minixmpp.web import escape as e


@dataclass
class Site:
    name: str
    domain: str
    stylesheet: str  # link


@dataclass
class AppInfo:
    id: str
    name: str
    preauth: bool = False
    download_text: str | None = None
    buttons: list[LinkButton] = field(default_factory=list)
    setup_text: str | None = None


@dataclass
class Form:
    token: str
    csrf: str
    min_length: int
    uri: str
    inviter: str | None = None
    app: AppInfo | None = None
    username: str = ""  # what the user typed (or the name the invite is bound to)
    locked: bool = False  # the invite allows this username only
    reset: bool = False  # a password-reset invite
    message: str | None = None
    landing: str | None = None  # link back to the invite


def form(site: Site, f: Form) -> str:
    name, domain = e(site.name), e(site.domain)
    if f.reset:
        parts = [
            f"<h1>Reset your password on {name}</h1>",
            f"<p>Choose a new password for <strong>{e(f.username)}@{domain}</strong>.</p>",
        ]
    else:
        using = f"using {e(f.app.name)} " if f.app else ""
        parts = [
            f"<h1>Register on {name}</h1>",
            f"<p>{name} is part of XMPP, a secure and decentralized messaging network. To begin"
            f" chatting {using}you need to first register an account.</p>",
            "<p>Creating an account will allow to communicate with"
            f" {e(f.inviter) + ' and ' if f.inviter else ''}other people on {name} and other"
            " services on the XMPP network.</p>",
        ]
        if f.app is not None and f.app.preauth:
            app = e(f.app.name)
            parts.append(
                f'<div class="notice"><p>If you already have {app} installed, we recommend that'
                " you continue the account creation process using the app by clicking on the"
                f" button below:</p><h3>{app} already installed?</h3>"
                f'<p><a class="button secondary" href="{e(f.uri)}" data-testid="open-app">Open'
                ' the app</a></p><p class="muted">This button works only if you have the app'
                " installed already!</p></div>"
            )
        parts.append("<h2>Create an account</h2>")
    if f.message:
        parts.append(f'<div class="notice warning" role="alert" data-testid="message">'
                     f"{e(f.message)}</div>")  # fmt: skip
    locked = " readonly" if f.locked else " autofocus"
    parts.append(
        '<form method="post" data-testid="register-form">'
        '<div class="field"><label for="user">Username:</label><div class="with-domain">'
        f'<input type="text" id="user" name="user" value="{e(f.username)}" required{locked}'
        ' autocomplete="username" autocapitalize="none" spellcheck="false"'
        f' aria-describedby="user-help"><span>@{domain}</span></div>'
        '<p id="user-help" class="help">'
        + ("This is your chat address." if f.reset or f.locked else
           "Choose a username, this will become the first part of your new chat address.")
        + "</p></div>"
        f'<div class="field"><label for="password">{"New password" if f.reset else "Password"}:'
        '</label><input type="password" id="password" name="password" required'
        f' minlength="{f.min_length}" autocomplete="new-password"'
        f'{" autofocus" if f.locked else ""} aria-describedby="password-help">'
        '<p id="password-help" class="help">Enter a secure password that you do not use'
        " anywhere else.</p></div>"
        f'<input type="hidden" name="token" value="{e(f.token)}">'
        + (f'<input type="hidden" name="app_id" value="{e(f.app.id)}">' if f.app else "")
        + f'<input type="hidden" name="csrf" value="{e(f.csrf)}">'
        f'<button type="submit">{"Set new password" if f.reset else "Submit"}</button></form>'
    )  # fmt: skip
    title = f"Reset your password on {name}" if f.reset else name
    return page(title, "\n".join(parts), stylesheet=site.stylesheet)


def error(site: Site, message: str, landing: str | None = None) -> str:
    name = e(site.name)
    back = f'<p><a href="{e(landing)}">Back to your invite</a></p>' if landing else ""
    body = (
        f"<h1>Invite to {name}</h1>\n<h2>Registration error</h2>\n"
        f'<p role="alert" data-testid="message">{e(message)}</p>{back}'
    )
    return page(f"Invite to {name}", body, stylesheet=site.stylesheet)


def _details(site: Site, jid: str) -> str:
    # Prosody's page shows the password just chosen as well; this one never shows a password
    # (the browser's password manager has it, from the form's autocomplete="new-password").
    return (
        "<p>As a final reminder, your account details are shown below:</p>"
        f'<dl class="details"><dt>Chat address (JID):</dt><dd><code data-testid="jid">{e(jid)}'
        "</code></dd><dt>Password:</dt><dd>the one you have just chosen</dd></dl>"
        f"<p>Your password is stored encrypted on {e(site.name)}: nobody can look it up, so keep"
        " it safe and never share it with anyone.</p>"
    )


def success(site: Site, jid: str, app: AppInfo | None, webchat: str | None) -> str:
    name = e(site.name)
    parts = [f"<h1>{name}</h1>", "<h2>Congratulations!</h2>"]
    if app is None:
        parts.append(f'<p data-testid="created">You have created an account on {name}.</p>')
        parts.append("<p>To start chatting, you need to enter your new account credentials into"
                     " your chosen XMPP software.</p>")  # fmt: skip
    else:
        app_name = e(app.name)
        parts.append(f'<p data-testid="created">You have created an account on {name}!</p>')
        parts.append(f"<p>You can now set up {app_name} and connect it to your new account.</p>")
        parts.append(f"<h3>Step 1: Download and install {app_name}</h3>")
        parts.append(f"<p>{e(app.download_text or f'Download and install {app.name} below:')}</p>")
        parts.append(link_buttons(app.buttons))
        parts.append(f"<h3>Step 2: Connect {app_name} to your new account</h3>")
        setup = app.setup_text or f"Launch {app.name} and sign in using your account credentials."
        parts.append(f"<p>{e(setup)}</p>")
    if webchat:
        parts.append(
            '<div class="notice success"><p><strong>No suitable software installed right'
            " now?</strong> You can also log in to your account through our online web"
            f' chat!</p><p><a class="button" href="{e(webchat)}">Log in via web</a></p></div>'
        )
    parts.append(_details(site, jid))
    return page(name, "\n".join(parts), stylesheet=site.stylesheet)


def reset_done(site: Site, jid: str) -> str:
    name = e(site.name)
    body = (
        f"<h1>{name}</h1>\n<h2>Password changed</h2>\n"
        f'<p data-testid="created">You can now log in to <code data-testid="jid">{e(jid)}</code>'
        " with your new password.</p>"
    )
    return page(name, body, stylesheet=site.stylesheet)

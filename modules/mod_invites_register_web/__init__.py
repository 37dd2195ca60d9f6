"""Registering with an invite in a web browser (prosody-modules' mod_invites_register_web).

* ``GET /register?t=TOKEN[&c=APP]``: the form (username with ``@domain``, password with the
  policy's ``minlength``), or for a password-reset invite the form for that account's new
  password. A token that cannot register (unknown, used, expired, contact-only): 303 to the
  invite's landing page, which says why.
* ``POST /register`` (``user``, ``password``, ``token``, ``app_id``, ``csrf``), checked in
  Prosody's order, each refusal shown on the form with Prosody's text: "Please fill in all
  fields.", "This username contains invalid characters.", "This username is already in use.",
  the password policy's message, and "This password contains characters that cannot be used."
  for one SASLprep refuses (where Prosody fails with its unknown error). Then the account is
  made by mod_register's ``create_account`` with the token (``extra["invite_token"]``), so the
  same ``user-registering`` gates as in-band registration apply (the invite and the name it is
  bound to, IP limits) and the invite is used in the transaction that creates the account:
  one token makes one account however many browsers race for it (the others are sent to the
  "Invite expired" page). Roles, groups and the contact subscription of the invite follow
  (mod_invites_register). A refusal shows "Registration error" with its reason; a failure
  "An unknown error has occurred (ID)", the ID in the log.
* Success: a 303 to the app's ``login_link_format`` if it has one, else a page with the
  address, the app's set-up steps and ``webchat_url``, never cached (Prosody's
  ``Cache-Control``, ``Pragma`` and ``Expires``). Unlike Prosody's, the page does not show the
  password: no page shows a password or a whole token.

Every form carries a CSRF field bound to a cookie (minixmpp.web.Csrf); a POST without both
gets the form again with 403. Logs name accounts, never passwords or whole tokens.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from minixmpp.errors import StanzaError
from minixmpp.events import Registration
from minixmpp.http import Route
from minixmpp.jid import InvalidJID, nodeprep
from minixmpp.module import Module
from minixmpp.web import NO_STORE, Csrf, csp, html_response, origin_of, relative
from minixmpp.web import security_headers as secure

from . import _pages as pages

PATH = "/register"
FILL_IN = "Please fill in all fields."
INVALID_NAME = "This username contains invalid characters."
IN_USE = "This username is already in use."
NOT_ALLOWED = "Registration is not allowed."
STALE_FORM = "This form has expired. Please send it again."
UNUSABLE = "This password contains characters that cannot be used."
UNKNOWN = "An unknown error has occurred ({})"


@dataclass
class Options:
    site_name: str | None = None  # default: the host's name
    webchat_url: str | None = None  # a "Log in via web" link on the success page


def load(module: Module) -> None:
    opts = module.options(Options)
    module.depends("http")
    invites = module.depends("invites")
    landing = module.depends("invites_page")
    apps = module.depends("register_apps")
    policy = module.depends("password_policy")
    register = module.depends("register")
    module.depends("invites_register")  # the invite gate on user-registering, roles, contacts
    site_name = opts.site_name or module.host
    csrf = Csrf(module.secret, f"register {module.host}", "minixmpp_register")
    # where a successful form may send the browser (CSP form-action covers the redirect)
    login_origins = {
        o for a in apps.apps if a.login_link_format
        for o in [origin_of(a.login_link_format.partition("{")[0])] if o
    }  # fmt: skip

    def headers(*extra: dict[str, str]) -> dict[str, str]:
        policy_text = csp(images=apps.image_origins(), forms=login_origins)
        merged = {**secure(policy_text), "Cache-Control": "no-store"}
        for more in extra:
            merged.update(more)
        return merged

    def site(request: web.Request) -> pages.Site:
        return pages.Site(site_name, module.host, relative(request.path, landing.stylesheet_path))

    def app_info(request: web.Request, ident: str | None) -> pages.AppInfo | None:
        app = apps.get(ident) if ident else None
        if app is None:
            return None
        return pages.AppInfo(
            app.id, app.name, app.supports_preauth_uri,
            app.download.text if app.download else None,
            apps.download_buttons(app, request.path),
            app.setup.text if app.setup else None,
        )  # fmt: skip

    def to_landing(request: web.Request, token: str) -> web.Response:
        location = relative(request.path, landing.landing_path(quote(token, safe="")))
        return web.Response(status=303, headers={**headers(), "Location": location})

    def show_form(
        request: web.Request, invite: Any, app_id: str | None, *, status: int = 200,
        message: str | None = None, username: str = "",
    ) -> web.Response:  # fmt: skip
        out = headers()
        locked = invite.allow_reset or invite.subject
        form = pages.Form(
            token=invite.token, csrf=csrf.issue(request, out),
            min_length=policy.policy.length, uri=invite.uri, inviter=invite.inviter,
            app=app_info(request, app_id), username=locked or username, locked=bool(locked),
            reset=invite.allow_reset is not None, message=message,
        )  # fmt: skip
        return html_response(pages.form(site(request), form), status=status, headers=out)

    def error_page(request: web.Request, message: str, invite: Any = None) -> web.Response:
        back = relative(request.path, landing.landing_path(invite.token)) if invite else None
        return html_response(pages.error(site(request), message, back), headers=headers())

    async def get(request: web.Request) -> web.Response:
        token = request.query.get("t", "")
        invite = await invites.for_registration(token)
        if invite is None:
            return to_landing(request, token)
        return show_form(request, invite, request.query.get("c"))

    async def post(request: web.Request) -> web.Response:
        data = await request.post()
        field = {k: v for k, v in data.items() if isinstance(v, str)}
        token = field.get("token") or request.query.get("t", "")
        invite = await invites.for_registration(token)
        if invite is None:
            return to_landing(request, token)
        user, password, app_id = (
            field.get("user", ""),
            field.get("password", ""),
            field.get("app_id"),
        )
        if not csrf.valid(request, field.get("csrf", "")):
            module.log.info("web registration form without a valid CSRF field")
            return show_form(request, invite, app_id, status=403, message=STALE_FORM,
                             username=user)  # fmt: skip
        if not user or not password:
            return show_form(request, invite, app_id, message=FILL_IN, username=user)
        try:
            username = nodeprep(user, strict=True)
        except InvalidJID:
            return show_form(request, invite, app_id, message=INVALID_NAME, username=user)
        resetting = invite.allow_reset is not None
        if not resetting and await module.users.exists(username):
            return show_form(request, invite, app_id, message=IN_USE, username=user)
        problem = policy.check(password, username)
        if problem is not None:
            return show_form(request, invite, app_id, message=problem, username=user)
        request_ = Registration(
            username=username, password=password, host=module.host, ip=request.remote or "",
            extra={"invite_token": token},
        )  # fmt: skip
        try:
            outcome = await register.create_account(request_, module.name)
        except StanzaError as refused:
            if await invites.for_registration(token) is None:  # another browser was quicker
                return to_landing(request, token)
            module.log.info("web registration of %s refused: %s", username, refused.condition)
            if refused.condition == "conflict":
                exists = refused.text in (None, "The requested username already exists.")
                message = IN_USE if exists else refused.text
                return show_form(request, invite, app_id, message=message, username=user)
            if refused.condition == "feature-not-implemented":  # a password SASLprep refuses
                return show_form(request, invite, app_id, message=UNUSABLE, username=user)
            if refused.condition == "internal-server-error":
                return failed(request, refused)
            return error_page(request, refused.text or NOT_ALLOWED, invite)
        except Exception as exc:  # a bug: logged with its id, the page shows only the id
            return failed(request, exc)
        jid = f"{username}@{module.host}"
        if outcome == "reset":
            return html_response(pages.reset_done(site(request), jid), headers=headers(NO_STORE))
        app = apps.get(app_id) if app_id else None
        if app is not None and app.login_link_format:
            values = {
                "site_name": site_name, "username": username, "domain": module.host,
                "password": password, "app.id": app.id, "app.name": app.name,
                "app.link": app.link,
            }  # fmt: skip
            location = invites.interpolate(app.login_link_format, values)
            return web.Response(status=303, headers=headers(NO_STORE, {"Location": location}))
        text = pages.success(site(request), jid, app_info(request, app_id), opts.webchat_url)
        return html_response(text, headers=headers(NO_STORE))

    def failed(request: web.Request, exc: Exception) -> web.Response:
        error_id = secrets.token_hex(4)
        module.log.error("web registration failed (%s)", error_id, exc_info=exc)
        return error_page(request, UNKNOWN.format(error_id))

    module.provides("http", Route("invites_register_web", PATH, {"GET": get, "POST": post}))

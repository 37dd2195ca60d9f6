"""Invite landing pages (prosody-modules' mod_invites_page): an invite becomes a web link that
anyone can open on any device, pick an app, or go on to web registration.

* ``GET|HEAD /invites_page?TOKEN`` (the whole query is the token): for a usable invite, 200
  with ``Link: <xmpp:…>; rel="alternate"`` (what an app that scanned the QR code reads with a
  HEAD request) and the same ``<link rel="alternate">`` in the head; "Invite to SITE", who
  invited, one card per app (mod_register_apps) whose button is the app's magic link, its
  setup page (apps that take the ``xmpp:`` URI) or web registration (the others), "register
  an account manually", and a QR code of the landing URL drawn on the server. A reset invite
  gets a page leading to the new-password form; a contact invite that allows no registration
  gets cards leading to setup pages and no registration link. An unknown, used or expired
  token: "Invite expired", 200 as in Prosody (``invites_page_expired_status`` = 404 or 410).
* ``GET /invites_page/setup/<app-id>?TOKEN``: "Join SITE with APP": install it, then accept
  the invite in it (or, for an app that cannot, register on the web).
* ``GET /invites_page/static/style.css``: the pages' one stylesheet.

Every page has CORS headers (``Access-Control-Expose-Headers: Link``), a strict
Content-Security-Policy, ``nosniff``, ``no-referrer`` and ``Cache-Control: no-store``.

Once loaded, an invite gets this page as its ``landing_page`` (the link the CLI, ad-hoc
commands and APIs hand out) unless ``invites_page`` says otherwise, for the kinds in
``invites_page_supports``. ``invites_page_external = true`` serves nothing (another site renders
the pages; ``invites_page`` must then say where).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from aiohttp import web

from minixmpp.config import ConfigError
from minixmpp.events import EventName
from minixmpp.http import HttpApi, Route
from minixmpp.module import Module
from minixmpp.web import CORS, csp, html_response, origin_of, relative, security_headers

from . import _pages as pages
from ._platform import platform_of
from ._qr import qr_svg

PATH = "/invites_page"
REGISTER_PATH = "/register"  # mod_invites_register_web's default
INVITE_CREATED: EventName[Any] = EventName("invite-created")  # mod_invites' event
STYLESHEET = (Path(__file__).parent / "static" / "style.css").read_text()


@dataclass
class Options:
    site_name: str | None = None  # default: the host's name
    invites_page_external: bool = False
    # where a card's button sends an app without XEP-0401 support (relative to this page)
    invites_registration_page: str | None = None  # default "register?t={invite.token}&c={app.id}"
    invites_page_expired_status: int = 200  # Prosody's; 404 or 410 as Snikket and ejabberd


class PagesApi:
    """What ``module.depends("invites_page")`` gives web registration: where things are."""

    def __init__(self, opts: Options, http: HttpApi, invites: Any, site_name: str) -> None:
        self.opts, self.http, self.invites, self.site_name = opts, http, invites, site_name

    @property
    def base_path(self) -> str:
        return self.http.path("invites_page", PATH)

    @property
    def stylesheet_path(self) -> str:
        return f"{self.base_path}/static/style.css"

    def landing_path(self, token: str) -> str:
        return f"{self.base_path}?{token}"

    def landing_url(self, token: str) -> str:
        return f"{self.http.url('invites_page', PATH)}?{token}"

    def registration_path(self, invite: Any, app_id: str | None = None) -> str:
        """Web registration for ``invite`` (and the app it is for): a path, or an absolute URL
        from ``invites_registration_page``."""
        template = self.opts.invites_registration_page
        if template is None:
            path = self.http.path("invites_register_web", REGISTER_PATH)
            return f"{path}?t={invite.token}" + (f"&c={app_id}" if app_id else "")
        link: str = self.invites.interpolate(template, template_values(invite, app_id=app_id))
        return link if origin_of(link) else urljoin(self.base_path, link)


def template_values(invite: Any, app: Any = None, app_id: str | None = None) -> dict[str, Any]:
    values = {
        "invite.token": invite.token, "invite.uri": invite.uri, "invite.jid": invite.jid,
        "invite.type": invite.type, "invite.inviter": invite.inviter,
        "app.id": app.id if app is not None else app_id,
    }  # fmt: skip
    if app is not None:
        values.update({"app.name": app.name, "app.link": app.link})
    return values


def load(module: Module) -> PagesApi:
    opts = module.options(Options)
    if opts.invites_page_expired_status not in (200, 404, 410):
        raise ConfigError(f"{module.name}: invites_page_expired_status must be 200, 404 or 410")
    http: HttpApi = module.depends("http")
    invites = module.depends("invites")
    apps = module.depends("register_apps")
    api = PagesApi(opts, http, invites, opts.site_name or module.host)
    if opts.invites_page_external:
        if not invites.opts.invites_page:
            raise ConfigError(
                f"{module.name}: invites_page_external needs invites_page (the URL template of"
                " the pages another site renders)"
            )
        return api

    @module.hook(INVITE_CREATED, priority=-1)  # after other handlers, as Prosody 13's core
    async def landing_page(invite: Any) -> None:
        if (
            invites.opts.invites_page is None  # mod_invites fills that template in itself
            and invite.landing_page is None
            and invite.kind in invites.opts.invites_page_supports
        ):
            invite.landing_page = api.landing_url(invite.token)

    def headers() -> dict[str, str]:
        return {
            **security_headers(csp(images=apps.image_origins())),
            "Cache-Control": "no-store",  # the page changes once the invite is used
        }

    def common(request: web.Request, invite: Any = None) -> pages.Common:
        qr = None
        if invite is not None:
            shared = invite.landing_page if origin_of(invite.landing_page or "") else None
            qr = qr_svg(shared or api.landing_url(invite.token))
        inviter = invite.inviter if invite is not None else None
        stylesheet = relative(request.path, api.stylesheet_path)
        return pages.Common(api.site_name, stylesheet, inviter, qr)

    def card(request: web.Request, invite: Any, app: Any, platform: str | None) -> pages.Card:
        if app.magic_link_format:  # a store link that hands the invite to the app
            proceed = invites.interpolate(app.magic_link_format, template_values(invite, app))
        elif app.supports_preauth_uri or not invite.allow_registration:
            proceed = f"{api.base_path}/setup/{app.id}?{invite.token}"
        else:
            proceed = api.registration_path(invite, app.id)
        logo = apps.image(app)
        return pages.Card(
            id=app.id, name=app.name, text=app.text,
            logo=relative(request.path, logo) if logo else None, logo_alt=app.imagetext or "",
            platforms=app.platforms, proceed=relative(request.path, proceed),
            select_text=app.select_text or "Select", match=platform in app.platforms,
        )  # fmt: skip

    def expired(request: web.Request) -> web.Response:
        text = pages.expired(common(request))
        return html_response(text, status=opts.invites_page_expired_status, headers=headers())

    def reset_page(request: web.Request, invite: Any, found: dict[str, str]) -> web.Response:
        form = relative(request.path, api.registration_path(invite))
        text = pages.reset(common(request), jid=invite.jid, uri=invite.uri, form=form)
        return html_response(text, headers=found)

    async def landing(request: web.Request) -> web.Response:
        invite = await invites.find(request.query_string)
        if invite is None:
            return expired(request)
        found = {**headers(), "Link": f'<{invite.uri}>; rel="alternate"', "Vary": "User-Agent"}
        if invite.kind == "password-reset":
            return reset_page(request, invite, found)
        platform = platform_of(request.headers.get("User-Agent", ""))
        cards = [card(request, invite, app, platform) for app in apps.apps]
        cards.sort(key=lambda c: not c.match)  # the visitor's platform first, order kept
        register = None
        if invite.allow_registration:
            register = relative(request.path, api.registration_path(invite))
        contact = invite.jid if invite.type == "roster" else None
        text = pages.landing(
            common(request, invite), cards, uri=invite.uri, register=register,
            platform=platform, contact_jid=contact,
        )  # fmt: skip
        return html_response(text, headers=found)

    async def setup(request: web.Request, app_id: str) -> web.Response:
        invite = await invites.find(request.query_string)
        if invite is None:
            return expired(request)
        if invite.kind == "password-reset":
            return reset_page(request, invite, headers())
        app = apps.get(app_id)
        if app is None:
            return html_response(pages.unknown_app(common(request)), status=404, headers=headers())
        register = None
        if invite.allow_registration:
            register = relative(request.path, api.registration_path(invite, app.id))
        buttons = apps.download_buttons(app, request.path)
        download = pages.Download(app.download.text if app.download else None, buttons)
        text = pages.setup(
            common(request, invite), card(request, invite, app, None), download,
            uri=invite.uri, preauth=app.supports_preauth_uri, register=register,
            contact_jid=invite.jid if invite.type == "roster" else None,
        )  # fmt: skip
        return html_response(text, headers=headers())

    async def serve(request: web.Request) -> web.StreamResponse:
        rest = request.path[len(api.base_path) :]
        if rest in ("", "/"):
            return await landing(request)
        if rest.startswith("/setup/"):
            return await setup(request, rest[len("/setup/") :])
        if rest == "/static/style.css":
            return web.Response(
                text=STYLESHEET, content_type="text/css", charset="utf-8",
                headers={"X-Content-Type-Options": "nosniff",
                         "Cache-Control": "public, max-age=3600"},
            )  # fmt: skip
        raise web.HTTPNotFound()

    module.provides("http", Route("invites_page", PATH, CORS.wrap({"GET": serve}), prefix=True))
    return api

"""The XMPP apps a server recommends (prosody-modules' mod_register_apps), for the invite pages
(mod_invites_page) and web registration (mod_invites_register_web).

``site_apps`` is Prosody's list of tables (``name``, ``text``, ``image``, ``link``,
``platforms``, ``supports_preauth_uri``, ``magic_link_format``, ``download`` = { ``text``,
``buttons`` = [{ ``text`` or ``image``, ``url``, ``target``, ``alttext`` }] }, ``setup`` =
{ ``text`` }, ``login_link_format``), Prosody's defaults when unset. An app's id is its name
with runs of other characters than letters and digits turned into "-", lower case; of apps
with one id the first is kept. ``site_apps_show`` keeps only the ids it names,
``site_apps_hide`` drops those it names.

Routes (under ``/register_apps``, movable with ``http_paths``):

* ``GET /register_apps/apps.json``: the list as JSON (ids included, images as absolute URLs),
  with CORS headers, so that tests and other front ends need not parse the pages;
* ``GET /register_apps/assets/logos/<id>.svg``: a monogram logo for each known app id (and
  ``generic``), drawn by this server (``_logos.py``): no third-party artwork ships here.

Files: ``_apps.py`` (the data and its shape), ``_logos.py`` (the monograms).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import msgspec
from aiohttp import web

from minixmpp.config import ConfigError
from minixmpp.http import Cors, HttpApi, Route
from minixmpp.module import Module
from minixmpp.web import LinkButton, origin_of, relative, security_headers

from ._apps import App, Button, Download, Setup, app_id, default_apps, site_apps
from ._logos import monogram

__all__ = ["App", "AppsApi", "Button", "Download", "Setup"]

PATH = "/register_apps"
LOGOS = "assets/logos/"
CORS = Cors()  # Prosody's headers: other front ends may read the list


@dataclass
class Options:
    site_apps: list[App] | None = None  # None: Prosody's default list
    site_apps_show: list[str] | None = None  # only these ids
    site_apps_hide: list[str] | None = None  # never these ids


class AppsApi:
    """What ``module.depends("register_apps")`` gives: the apps of this host, in order."""

    def __init__(self, apps: list[App], http: HttpApi) -> None:
        self.apps = apps
        self._by_id = {app.id: app for app in apps if app.id is not None}
        self._http = http

    def get(self, ident: str) -> App | None:
        return self._by_id.get(ident)

    @property
    def base_path(self) -> str:
        return self._http.path("register_apps", PATH)

    def image(self, app: App | Button) -> str | None:
        """Where ``app``'s logo (or a download button's image) is: an absolute URL, or a
        path on this server."""
        if app.image is None:
            return None
        if origin_of(app.image) is not None:
            return app.image
        return f"{self.base_path}/{app.image.lstrip('/')}"

    def download_buttons(self, app: App, page_path: str) -> list[LinkButton]:
        """``app``'s download buttons for the page at ``page_path`` (images linked from it)."""
        buttons = []
        for b in app.download.buttons if app.download else []:
            image = self.image(b)
            text = (b.alttext if image else b.text) or b.text or b.url
            buttons.append(LinkButton(b.url, text, image and relative(page_path, image), b.target))
        return buttons

    def image_origins(self) -> set[str]:
        """The other origins that logos and download badges come from (for the pages' CSP)."""
        urls = [app.image for app in self.apps if app.image]
        for app in self.apps:
            if app.download is not None:
                urls += [b.image for b in app.download.buttons if b.image]
        return {o for o in map(origin_of, urls) if o is not None and o.startswith("http")}

    def as_json(self) -> list[dict[str, object]]:
        listed: list[dict[str, object]] = []
        base = self._http.url("register_apps", PATH)
        for app in self.apps:
            data = {"id": app.id, **msgspec.to_builtins(app)}
            if app.image is not None and origin_of(app.image) is None:
                data["image"] = f"{base}/{app.image.lstrip('/')}"
            listed.append(data)
        return listed


def load(module: Module) -> AppsApi:
    opts = module.options(Options)
    http: HttpApi = module.depends("http")
    apps = site_apps(opts.site_apps, opts.site_apps_show, opts.site_apps_hide)
    for app in apps:
        if app.image is not None and ".." in app.image.split("/"):
            raise ConfigError(f"{module.name}: site_apps: {app.name}: image {app.image!r}")
    api = AppsApi(apps, http)
    # the logos this server draws: every app it knows of, by id
    known = {app_id(a): a.name for a in [*default_apps(), *(opts.site_apps or [])]}
    known["generic"] = "XMPP"

    async def serve(request: web.Request) -> web.Response:
        rest = request.path[len(api.base_path) :].lstrip("/")
        headers = security_headers("default-src 'none'; style-src 'unsafe-inline'")
        if rest == "apps.json":
            body = json.dumps(api.as_json(), indent=1, ensure_ascii=False)
            return web.json_response(text=body, headers=headers)
        if rest.startswith(LOGOS) and rest.endswith(".svg"):
            name = known.get(rest[len(LOGOS) : -len(".svg")])
            if name is not None:
                svg = monogram(name, rest[len(LOGOS) : -len(".svg")])
                headers["Cache-Control"] = "public, max-age=86400"
                return web.Response(text=svg, content_type="image/svg+xml", headers=headers)
        raise web.HTTPNotFound()

    module.provides("http", Route("register_apps", PATH, CORS.wrap({"GET": serve}), prefix=True))
    return api

"""Registering with an invite over a JSON API (Prosody community's mod_invites_register_api, the
one Snikket's web portal uses). Paths below ``/register_api`` (``http_paths`` moves it):

* ``GET /register_api/invite/TOKEN``: 200 ``{site_name, token, domain, uri, type, inviter?,
  reset?}`` (``inviter`` for contact invites, ``reset`` the username of a password-reset
  invite), or 404 when the token cannot register (unknown, expired, used, contact-only).
* ``POST /register_api/register``, ``Content-Type: application/json``, ``{"username",
  "password", "token"}``: 200 ``{"jid": "user@host"}`` once the account exists (or, with a
  reset invite, once that user's password is set). 400 for a body that is not a JSON object or
  fields that are missing, empty or not strings, a username nodeprep refuses or a password
  SASLprep refuses; 404 for a token that cannot register; 403 for a reset token used for
  another user, or any refusal of ``user-registering`` (invite rules, IP limits, password
  policy); 409 for an existing account (or a reserved name); 500 if the account cannot be
  created.

Accounts are made by mod_register's pipeline (``RegisterApi.create_account``) with the token in
``extra["invite_token"]``, so every gate of in-band registration applies, and the invite is used
in the transaction that creates the account: however many requests race with one token, one
account is made; the others get 404, as the token is gone. mod_invites_register (the gate that
uses invites) and mod_register_limits (the IP limits) are loaded with this module.

Unlike Prosody's module: a reset goes through the same pipeline (gates, the invite used; Prosody
sets the password directly); ``Content-Type`` may carry parameters (``; charset=utf-8``); errors
come with a JSON body ``{"error": "…"}`` saying why (Prosody sends its HTML error page).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from minixmpp.errors import StanzaError
from minixmpp.events import Registration
from minixmpp.http import Cors, Route
from minixmpp.jid import InvalidJID, nodeprep
from minixmpp.module import Module
from minixmpp.storage import Transaction

INVALID = "The invite token is invalid or expired"
CORS = Cors(methods=("GET", "POST", "OPTIONS"))


@dataclass
class Options:
    site_name: str | None = None  # shown to the invitee; default: the host's name


def reply(status: int, data: dict[str, Any]) -> web.Response:
    return web.json_response(data, status=status)


def failure(status: int, text: str) -> web.Response:
    return reply(status, {"error": text})


def load(module: Module) -> None:
    opts = module.options(Options)
    http = module.depends("http")
    invites = module.depends("invites")
    register = module.depends("register")
    module.depends("invites_register")  # the gate that checks and uses the invite
    module.depends("register_limits")  # IP limits, whether or not in-band registration is on
    site_name = opts.site_name or module.host

    def below(request: web.Request) -> str:
        """The request's path below the route's base (``/invite/T``, ``/register``)."""
        return request.path[len(http.path("invites_register_api", "/register_api")) :]

    async def invite_info(request: web.Request) -> web.StreamResponse:
        kind, _, token = below(request).removeprefix("/").partition("/")
        invite = await invites.for_registration(token) if kind == "invite" and token else None
        if invite is None:
            return failure(404, INVALID)
        data = {
            "site_name": site_name, "token": invite.token, "domain": module.host,
            "uri": invite.uri, "type": invite.type, "inviter": invite.inviter,
            "reset": invite.allow_reset,
        }  # fmt: skip
        return reply(200, {k: v for k, v in data.items() if v is not None})

    async def register_with_invite(request: web.Request) -> web.StreamResponse:
        if below(request) != "/register":
            return failure(404, "Not found")
        body = await request.read() if request.content_type == "application/json" else b""
        if not body:
            return failure(400, "Expected a JSON body (Content-Type: application/json)")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            data = None
        if not isinstance(data, dict):
            return failure(400, "The body is not a JSON object")
        token = data.get("token")
        if not isinstance(token, str) or await invites.for_registration(token) is None:
            return failure(404, INVALID)  # Prosody's order: the token, then the fields
        username, password = data.get("username"), data.get("password")
        if not (isinstance(username, str) and isinstance(password, str) and username and password):
            return failure(400, "username and password are required, as strings")
        try:
            prepared = nodeprep(username, strict=True)  # never empty
        except InvalidJID:
            return failure(400, "The requested username is invalid.")
        return await create(request, prepared, password, token)

    async def create(
        request: web.Request, username: str, password: str, token: str
    ) -> web.StreamResponse:
        registration = Registration(
            username=username, password=password, host=module.host, ip=request.remote or "",
            extra={"invite_token": token},
        )  # fmt: skip

        async def require_invite(_tx: Transaction) -> None:
            # The gate found no invite (another request used it first): with open
            # registration it would let the account be made without one.
            if "invite" not in registration.extra:
                raise StanzaError("forbidden", INVALID, "cancel")

        registration.in_transaction.append(require_invite)
        try:
            await register.create_account(registration, module.name)
        except StanzaError as error:
            return await refused(error, token)
        return reply(200, {"jid": f"{username}@{module.host}"})

    async def refused(error: StanzaError, token: str) -> web.Response:
        text = error.text or error.condition
        module.log.info("registration through the API refused: %s (%s)", error.condition, text)
        if error.condition == "conflict":
            return failure(409, text)
        if await invites.for_registration(token) is None:
            return failure(404, INVALID)  # used meanwhile, by a request that was quicker
        if error.condition == "feature-not-implemented":  # a password SASLprep refuses
            return failure(400, text)
        if error.condition == "internal-server-error":
            return failure(500, "The account could not be created")
        return failure(403, text)

    async def preflight(request: web.Request) -> web.StreamResponse:
        kind, _, rest = below(request).removeprefix("/").partition("/")
        if (kind, bool(rest)) not in (("invite", True), ("register", False)):
            return failure(404, "Not found")
        return web.Response()  # 200, empty: the headers are added as to every answer

    handlers = {"GET": invite_info, "POST": register_with_invite, "OPTIONS": preflight}
    route = Route("invites_register_api", "/register_api", CORS.wrap(handlers), prefix=True)
    module.provides("http", route)

"""Account invites over HTTP for holders of an API key (Prosody community's mod_invites_api).

``GET /invites_api`` (``http_paths.invites_api`` moves it) with the key as ``Authorization:
Bearer ID/TOKEN`` or as ``?key=ID/TOKEN`` creates an account invite and answers 201 Created,
no body, ``Location: <landing page, or the xmpp: URI>``; with a ``redirect`` query parameter
(any value) 303 See Other instead, so a browser goes straight to the invite. A missing or bad
key gets 403; a method the key may not use 405. Keys are made, listed and deleted by the
operator (``minixmpp mod_invites_api create|list|delete HOST``, admin commands
``invites_api.*``) and kept in the host's map store ``invite_api_keys`` under their id.

Where this differs from Prosody's module, on purpose:

* The store keeps a SHA-256 hash of the key's token part, not the token: a copy of the
  database does not hold usable keys (the token is 216 random bits, so a plain hash is enough),
  and a key is compared in constant time.
* POST is served as GET is (Prosody routes GET only, so POST gets 404 though its keys allow
  it). HEAD is never a key's method: 405, as in Prosody 13 (whose HEAD falls back to GET).
* A request with no query string is answered like any other (Prosody answers 500), the
  ``Bearer`` scheme is matched case-insensitively (RFC 7235), and a key may be limited to GET or
  to POST when it is created (``--method``).
* CORS: Prosody's headers, plus ``Authorization`` among the allowed request headers and
  ``Location`` exposed, so that a web page can use a Bearer key and read the link. The answer
  carries ``Cache-Control: no-store``: its Location holds a fresh token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Any

from aiohttp import web

from minixmpp.admin import AdminCommand, AdminError
from minixmpp.http import Cors, Route
from minixmpp.module import Module

# Admin commands this module adds (the CLI's "mod_invites_api" commands).
ADMIN_COMMANDS = ("invites_api.create", "invites_api.list", "invites_api.delete")
METHODS = ("GET", "POST")  # what a key may be allowed
CORS = Cors((*METHODS, "OPTIONS"), ("Content-Type", "Authorization"), expose=("Location",))
# A key in any text (a message body in the wire log): the id and "/" kept, the token cut.
KEY_IN_TEXT = re.compile(r"(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{12}/)[A-Za-z0-9_-]{36}(?![\w-])")
_KEY = re.compile(r"([A-Za-z0-9_-]{1,64})/([A-Za-z0-9_-]{1,128})")


def _random(size: int) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(size)).decode()


def new_key() -> tuple[str, str]:
    """A key's id (12 characters, as Prosody's util.id.short; never starting with "-", so it
    cannot pass for an option on a command line) and its token (36, util.id.long)."""
    while (key_id := _random(9)).startswith("-"):
        pass
    return key_id, _random(27)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load(module: Module) -> None:
    module.depends("http")
    invites = module.depends("invites")
    keys = module.open_store("invite_api_keys", "map")  # key id -> record (host-level)
    module.add_log_secret(KEY_IN_TEXT)

    async def key_of(request: web.Request) -> dict[str, Any] | None:
        """The stored key the request presents, if it is a valid one."""
        header = request.headers.get("Authorization")
        if header is not None:  # a header that is not Bearer means no key (as Prosody)
            scheme, _, value = header.strip().partition(" ")
            given = value.strip() if scheme.lower() == "bearer" else None
        else:
            given = request.query.get("key")
        match = _KEY.fullmatch(given or "")
        if match is None:
            return None
        key_id, token = match.groups()
        record = await keys.get(None, key_id)
        stored = record.get("token_sha256", "") if isinstance(record, dict) else ""
        if not hmac.compare_digest(stored, digest(token)):  # also when there is no such key
            return None
        return record  # type: ignore[no-any-return]

    async def create_invite(request: web.Request) -> web.StreamResponse:
        record = await key_of(request)
        if record is None:
            module.log.info("invite API: refused a request without a valid key")
            raise web.HTTPForbidden()
        allowed = record.get("allowed_methods", list(METHODS))
        if request.method not in allowed:
            raise web.HTTPMethodNotAllowed(request.method, allowed)
        invite = await invites.create_account(source=f"api/token/{record['id']}")
        module.log.info("invite API: key %s created an account invite", record["id"])
        status = 303 if "redirect" in request.query else 201
        headers = {"Location": invite.link, "Cache-Control": "no-store"}
        return web.Response(status=status, headers=headers)

    handlers = CORS.wrap({method: create_invite for method in METHODS})
    module.provides("http", Route("invites_api", "/invites_api", handlers))

    # -- the operator's commands ---------------------------------------------------------------

    async def create(_host: Any, args: dict[str, Any]) -> dict[str, Any]:
        methods = [str(m).upper() for m in args.get("methods") or METHODS]
        if not methods or set(methods) - set(METHODS):
            raise AdminError(f"a key's methods are among {', '.join(METHODS)}")
        key_id, token = new_key()
        name = args.get("name") or None
        record = {
            "id": key_id, "name": name, "created_at": int(module.clock.time()),
            "allowed_methods": sorted(set(methods)), "token_sha256": digest(token),
        }  # fmt: skip
        await keys.set(None, key_id, record)
        module.log.info("created invite API key %s", key_id)
        return {"id": key_id, "name": name, "key": f"{key_id}/{token}"}

    async def listing(_host: Any, _args: dict[str, Any]) -> list[dict[str, Any]]:
        fields = ("id", "name", "created_at", "allowed_methods")  # never the hash
        shown = [{k: r.get(k) for k in fields} for r in (await keys.items(None)).values()]
        return sorted(shown, key=lambda r: (r["created_at"] or 0, r["id"]))

    async def delete(_host: Any, args: dict[str, Any]) -> str:
        key_id = str(args.get("id", ""))
        if not key_id or not await keys.set(None, key_id, None):
            raise AdminError(f"no such key: {key_id}")
        module.log.info("deleted invite API key %s", key_id)
        return key_id

    handlers_by_name = {
        "invites_api.create": create, "invites_api.list": listing, "invites_api.delete": delete,
    }  # fmt: skip
    for command in ADMIN_COMMANDS:
        module.add_item("admin-command", AdminCommand(command, handlers_by_name[command]))

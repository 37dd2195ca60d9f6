"""The HTTP side: PUT into a slot, GET (and HEAD) what was put there.

PUT answers as Prosody's: 401 without a valid token (``WWW-Authenticate: Bearer`` when there
is none), 410 once it has expired, 400 when it is for another slot, 413 when the body's size
is not the slot's (``Content-Length``, or counted as the body streams in), 409 when the slot
already holds its file, 201 when it does now. Stricter than Prosody: 410 for a slot that no
longer exists (expired, or its account deleted), 409 while another PUT writes the same slot,
415 when the PUT names another content type than the slot was asked for (XEP-0363 §5: SHOULD
reject; ``application/octet-stream``, what HTTP libraries send by default, and a slot asked
for without a type let any pass).

GET serves the file as aiohttp's FileResponse does (ranges, ETag, If-Modified-Since; sent
from the file, never read whole) with the slot's content type, ``Content-Disposition``
(``inline`` for the safe types, ``attachment`` for others), and Prosody's
``Content-Security-Policy``, ``nosniff``, framing and caching headers: 404 for an unknown slot,
410 for a slot without its file. No ``Strict-Transport-Security``: on a test host it would pin
HTTPS for ``localhost`` in the browser for a year.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from minixmpp.clock import Clock
from minixmpp.http import Cors, HttpApi

from . import _token
from ._files import Files, TooLong
from ._rules import OCTET_STREAM, UPLOAD_STARTED, UPLOAD_STORED, Upload, matches, media_type
from ._slots import Slots

NAME, PATH = "file_share", "/file_share"
CORS = Cors(
    methods=("PUT", "GET", "OPTIONS"), headers=("Authorization", "Content-Type"), credentials=True
)
DOWNLOAD_HEADERS = {
    "Cache-Control": "max-age=31556952, immutable",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none';",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
INDEX = "This is where files will be uploaded to, and served from.\n"
SLOT_LENGTH = 24


@dataclass
class Endpoint:
    http: HttpApi
    slots: Slots
    files: Files
    key: bytes
    clock: Clock
    safe_types: frozenset[str]
    fire: Callable[[Any, Upload], Awaitable[Any]]  # module.fire

    def url(self, slot: str, filename: str) -> str:
        return f"{self.http.url(NAME, PATH)}/{slot}/{quote(filename, safe='')}"

    def _slot_in(self, request: web.Request) -> str | None:
        """The slot a path names (``/file_share/<slot>/<file name>``), None for the base."""
        tail = request.path[len(self.http.path(NAME, PATH)) :].strip("/")
        return tail.split("/", 1)[0] if tail else None

    async def put(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})
        claims = _token.verify(self.key, auth.removeprefix("Bearer "))
        if claims is None or not isinstance(claims.get("exp"), int):
            raise web.HTTPUnauthorized()
        if claims["exp"] < self.clock.time():
            raise web.HTTPGone()
        slot, size = claims.get("slot"), claims.get("filesize")
        if not isinstance(slot, str) or slot != self._slot_in(request) or not isinstance(size, int):
            raise web.HTTPBadRequest()
        if request.content_length is not None and request.content_length != size:
            raise web.HTTPRequestEntityTooLarge(size, request.content_length)
        wanted = media_type(str(claims.get("filetype") or OCTET_STREAM))
        given = media_type(request.headers.get("Content-Type") or OCTET_STREAM)
        if OCTET_STREAM not in (wanted, given) and given != wanted:
            raise web.HTTPUnsupportedMediaType()
        found = await self.slots.get(slot)
        if found is None:
            raise web.HTTPGone()  # expired, or deleted with its account
        if slot in self.files.busy or await self.files.exists(slot):
            raise web.HTTPConflict()
        record, when, uploader = found
        upload = Upload(slot, uploader, record.filename, size)
        self.files.busy.add(slot)
        try:
            await self.fire(UPLOAD_STARTED, upload)
            body = request.content.iter_any()
            received = await self.files.receive(slot, body, size, int(when))
        except TooLong:
            raise web.HTTPRequestEntityTooLarge(size, size + 1) from None
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise web.HTTPInsufficientStorage() from None
            raise
        finally:
            self.files.busy.discard(slot)
        if received != size:
            raise web.HTTPRequestEntityTooLarge(size, received)
        if await self.slots.get(slot) is None:  # deleted while it was being written
            await self.files.remove(slot)
            raise web.HTTPGone()
        await self.fire(UPLOAD_STORED, upload)
        return web.Response(status=201)

    async def get(self, request: web.Request) -> web.StreamResponse:
        slot = self._slot_in(request)
        if slot is None:
            return web.Response(text=INDEX, headers={"X-Content-Type-Options": "nosniff"})
        if len(slot) != SLOT_LENGTH:
            raise web.HTTPNotFound()
        found = await self.slots.get(slot)
        if found is None:
            raise web.HTTPNotFound()
        record = found[0]
        if not await self.files.exists(slot):
            raise web.HTTPGone()  # never uploaded, or gone
        served = record.served_type
        disposition = "inline" if matches(self.safe_types, served) else "attachment"
        name = quote(record.filename, safe="")
        headers = {
            **DOWNLOAD_HEADERS,
            "Content-Type": served,
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{name}",
        }
        return web.FileResponse(self.files.path(slot), headers=headers)

"""HTTP File Upload (XEP-0363 1.1, ``urn:xmpp:http:upload:0``), as Prosody 0.12's
mod_http_file_share, on the HTTP server of mod_http.

Loaded on a VirtualHost, the host's disco#info carries the ``store/file`` identity, the
feature and the ``max-file-size`` form (XEP-0128), where Conversations, Gajim, Dino and
slixmpp look first; or, as Prosody runs it, on a Component (``[Component."upload.example.com"]
component_module = "http_file_share"``), listed in its parent's disco#items, whose own
disco#info says the same (its URLs then name the component, which clients must reach, and a
VirtualHost must load ``http``: components open no listeners).
A client asks the service for a slot (an IQ get with ``<request/>``) and gets a GET URL and a
PUT URL (``/file_share/<slot>/<file name>`` under the host's HTTP URL or ``http_external_url``)
with an ``Authorization: Bearer`` token (_token.py) valid five minutes. The errors are
Prosody's: ``auth/forbidden`` (not allowed), ``modify/bad-request`` ("Invalid filename", "File
size must be positive integer"), ``modify/not-acceptable`` ("File too large", with
``<file-too-large><max-file-size/>``; "File type not allowed"), ``wait/resource-constraint``
("Daily quota reached", with XEP-0363's ``<retry stamp/>``, which Prosody does not send;
"Server global storage quota reached").

What a user may fill is bounded: one file of ``http_file_share_size_limit`` bytes, slots for
``http_file_share_daily_quota`` bytes (and ``http_file_share_daily_slots`` slots) in any 24
hours, ``http_file_share_global_quota`` bytes on the host; a body is counted as it streams in
and cut off past the slot's size. Files are deleted ``http_file_share_expires_after`` seconds
after their slot was issued (at start, then daily), and with the account of their uploader.
By default the users of every host of this server may upload (Prosody's rule);
``http_file_share_access`` lists the JIDs and hosts that may instead.

Stricter than Prosody: a file name must be one non-empty path segment without control
characters, of at most 255 bytes; a content type must be a media type (it becomes a header);
see _http.py for the HTTP side. The events ``upload-started`` and ``upload-stored`` say
when a PUT begins to be written and when its file is whole (a test waits on them).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any

from minixmpp.config import NonNegativeInt, PositiveInt
from minixmpp.errors import StanzaError
from minixmpp.events import SERVER_RESET, ServerEvent, StanzaEvent
from minixmpp.http import HttpApi, Route
from minixmpp.jid import JID
from minixmpp.module import Module
from minixmpp.storage import Transaction
from minixmpp.xml import dataforms as df
from minixmpp.xml import stanza as st

from . import _token
from ._files import Files
from ._http import CORS, NAME, PATH, Endpoint
from ._rules import (
    NS,
    OCTET_STREAM,
    Record,
    check_patterns,
    matches,
    parse_size,
    valid_content_type,
    valid_filename,
)
from ._slots import DAY, Quotas, Slots

TOKEN_LIFETIME = 300  # seconds to start the PUT (Prosody's)


@dataclass
class Options:
    http_file_share_size_limit: NonNegativeInt = 10 * 1024 * 1024  # bytes of one file
    http_file_share_daily_quota: NonNegativeInt | None = None  # None: 10 times the size limit
    http_file_share_daily_slots: PositiveInt = 1000  # slots per uploader in 24 hours
    http_file_share_global_quota: NonNegativeInt | None = None  # bytes on this host; None: no cap
    http_file_share_expires_after: int = 7 * 86400  # seconds; negative: never
    http_file_share_allowed_file_types: list[str] = field(default_factory=list)  # empty: any
    http_file_share_safe_file_types: list[str] = field(
        default_factory=lambda: ["image/*", "video/*", "audio/*", "text/plain"]
    )
    http_file_share_access: list[str] = field(default_factory=list)  # JIDs or hosts
    http_file_share_secret: str | None = None  # signs the tokens; default: from the server's


def load(module: Module) -> Any:
    opts = module.options(Options)
    allowed_types = check_patterns(
        "http_file_share_allowed_file_types", opts.http_file_share_allowed_file_types
    )
    safe_types = check_patterns(
        "http_file_share_safe_file_types", opts.http_file_share_safe_file_types
    )
    size_limit = opts.http_file_share_size_limit
    daily = opts.http_file_share_daily_quota
    quotas = Quotas(
        daily_bytes=size_limit * 10 if daily is None else daily,
        daily_slots=opts.http_file_share_daily_slots,
        global_bytes=opts.http_file_share_global_quota,
    )
    access = set(opts.http_file_share_access)
    secret = opts.http_file_share_secret
    key = (
        secret.encode()
        if secret
        else hmac.new(module.secret, f"http_file_share {module.host}".encode(), "sha256").digest()
    )
    module.depends("disco")  # on a component too (Prosody's)
    http: HttpApi = module.depends("http")
    slots = Slots(module.open_store("uploads", "archive"), module.transaction, module.clock, quotas)
    files = Files(module.data_path / "http_file_share" / module.host)
    endpoint = Endpoint(http, slots, files, key, module.clock, safe_types, module.fire)
    module.add_log_secret(_token.IN_LOG)

    module.add_identity("store", "file", "HTTP File Upload")
    module.add_feature(NS)
    module.add_item(
        "disco-extension",
        df.Form(
            type="result",
            fields=[
                df.hidden("FORM_TYPE", NS),
                df.Field("max-file-size", values=[str(size_limit)]),
            ],
        ).element(),
    )

    def may_upload(uploader: JID) -> bool:
        if not access:
            return module.is_local_host(uploader.domain)
        return uploader.bare in access or uploader.domain in access

    @module.hook(f"iq-get/host/{NS}:request")
    async def request_slot(event: StanzaEvent) -> bool:
        request = event.stanza[0]
        uploader = event.session.jid
        filename = request.get("filename")
        size = parse_size(request.get("size"))
        content_type = request.get("content-type") or None
        if not may_upload(uploader):
            raise StanzaError("forbidden")
        if not valid_filename(filename):
            raise StanzaError("bad-request", "Invalid filename")
        assert filename is not None
        if size is None:
            raise StanzaError("bad-request", "File size must be positive integer")
        if size > size_limit:
            too_large = st.element(f"{{{NS}}}file-too-large")
            st.sub(too_large, f"{{{NS}}}max-file-size", text=str(size_limit))
            raise StanzaError("not-acceptable", "File too large", app=too_large)
        if content_type is not None and not valid_content_type(content_type):
            raise StanzaError("bad-request", "Invalid content type")
        if allowed_types and not matches(allowed_types, content_type or OCTET_STREAM):
            raise StanzaError("not-acceptable", "File type not allowed")
        slot, when = await slots.issue(uploader.bare, Record(filename, size, content_type))
        module.log.info("Issuing upload slot to %s for %d bytes", uploader.bare, size)
        now = int(when)
        claims = {
            "sub": uploader.bare,
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
            "slot": slot,
            "filename": filename,
            "filesize": size,
            "filetype": content_type or OCTET_STREAM,
        }
        if opts.http_file_share_expires_after >= 0:
            claims["expires"] = now + opts.http_file_share_expires_after
        url = endpoint.url(slot, filename)
        reply = st.reply(event.stanza)
        element = st.sub(reply, f"{{{NS}}}slot")
        st.sub(element, f"{{{NS}}}get", {"url": url})
        put = st.sub(element, f"{{{NS}}}put", {"url": url})
        authorization = f"Bearer {_token.sign(key, claims)}"
        st.sub(put, f"{{{NS}}}header", {"name": "Authorization"}, text=authorization)
        event.session.send(reply)
        return True

    module.provides(
        "http", Route(NAME, PATH, CORS.wrap({"GET": endpoint.get, "PUT": endpoint.put}), True)
    )

    # -- deletion: expired slots, deleted accounts, the test harness's resets --------------

    async def reconcile() -> None:
        removed = await files.reconcile(slots.existing)
        if removed:
            module.log.info("removed %d files of slots that no longer exist", removed)

    async def expire() -> None:
        expiry = opts.http_file_share_expires_after
        if expiry < 0:
            return
        boundary = module.clock.time() - expiry
        count = 0
        while True:
            page = await slots.older_than(boundary)
            gone = [item.id for item in page if await files.remove(item.id)]
            await slots.delete(gone)
            count += len(gone)
            if len(gone) < len(page):
                module.log.error("could not delete some expired uploaded files")
                break
            if not page or len(page) < 500:
                break
        if count:
            module.log.info("deleted %d expired uploaded files", count)
        await reconcile()

    async def with_account(tx: Transaction, bare: str) -> None:
        ids = await slots.of(bare, tx)
        if not ids:
            return
        await slots.delete(ids, tx=tx)

        async def remove_files() -> None:
            # Runs once the deletion's transaction has ended (transactions take turns): the
            # files of the slots that are gone are deleted; a rollback keeps them.
            async with module.transaction() as check:
                still = await slots.existing(ids, tx=check)
            for slot in ids:
                if slot not in still:
                    await files.remove(slot)

        module.spawn(remove_files())

    module.delete_with_any_account(with_account)

    @module.hook(SERVER_RESET)
    async def reset(_event: ServerEvent) -> None:
        slots.forget_total()
        await reconcile()

    module.add_timer(0, expire)
    module.every(DAY, expire)
    return endpoint

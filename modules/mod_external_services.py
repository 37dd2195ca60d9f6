"""External Service Discovery (XEP-0215, ``urn:xmpp:extdisco:2`` and ``:1``), as Prosody's
mod_external_services: the STUN and TURN (or other) services of ``external_services`` are
listed to the host's users (all of them, or those of ``external_service_access``), and
credentials for the restricted ones are given on request. A service with a ``secret`` (or
``secret = true`` and ``external_service_secret``) gets time-limited TURN REST credentials:
username ``EXPIRES[:username]`` and password base64(HMAC-SHA1(secret, username)), valid for
``ttl`` (``external_service_ttl``) seconds.

A service without a ``type`` stops start-up (Prosody logs it and leaves it out).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from minixmpp.clock import stamp
from minixmpp.errors import ModuleError, StanzaError
from minixmpp.events import StanzaEvent
from minixmpp.module import Module
from minixmpp.xml import stanza as st

NAMESPACES = ("urn:xmpp:extdisco:2", "urn:xmpp:extdisco:1")


@dataclass
class Options:
    external_services: list[dict[str, Any]] = field(default_factory=list)
    external_service_host: str | None = None  # default: the VirtualHost's name
    external_service_port: int | None = None
    external_service_secret: str | None = None
    external_service_ttl: int = 86400
    external_service_access: list[str] = field(default_factory=list)  # JIDs or hosts


def load(module: Module) -> None:
    opts = module.options(Options)
    host = opts.external_service_host or module.host
    for item in opts.external_services:
        if not isinstance(item.get("type"), str):
            raise ModuleError(f"external_services: a service has no 'type': {item!r}")

    def prepare(item: dict[str, Any], now: float) -> dict[str, str | None]:
        port = item.get("port", opts.external_service_port)
        srv: dict[str, Any] = {
            "type": item["type"],
            "transport": item.get("transport"),
            "host": item.get("host", host),
            "port": str(port) if isinstance(port, int) else None,
            "username": item.get("username"),
            "password": item.get("password"),
            "restricted": "1" if item.get("password") or item.get("restricted") else None,
            "expires": None,
        }
        expires: float | None = None
        if isinstance(item.get("expires"), int):
            expires = item["expires"]
        elif isinstance(item.get("ttl"), int):
            expires = now + item["ttl"]
        secret = item.get("secret")
        if secret is True:
            secret = opts.external_service_secret
        if isinstance(secret, str):
            ttl = item["ttl"] if isinstance(item.get("ttl"), int) else opts.external_service_ttl
            expires = expires or now + ttl
            name = f"{int(expires)}"
            if isinstance(item.get("username"), str):
                name += f":{item['username']}"
            digest = hmac.new(secret.encode(), name.encode(), hashlib.sha1).digest()
            srv.update(username=name, password=base64.b64encode(digest).decode(), restricted="1")
        if expires is not None:
            srv["expires"] = stamp(expires)
        return srv

    def services() -> list[dict[str, str | None]]:
        now = module.clock.time()
        return [prepare(item, now) for item in opts.external_services]

    def allowed(event: StanzaEvent) -> bool:
        jid = event.session.jid
        if not opts.external_service_access:
            return event.session.c2s
        return (
            jid.bare in opts.external_service_access or jid.domain in opts.external_service_access
        )

    def answer(event: StanzaEvent, chosen: list[dict[str, str | None]]) -> None:
        request = event.stanza[0]
        reply = st.reply(event.stanza)
        listing = st.sub(reply, request.tag)
        for srv in chosen:
            st.sub(listing, f"{{{etree.QName(request).namespace}}}service", srv)
        event.session.send(reply)

    async def list_services(event: StanzaEvent) -> bool:
        if not allowed(event):
            raise StanzaError("forbidden", type="auth")
        wanted = event.stanza[0].get("type")
        answer(event, [s for s in services() if wanted is None or s["type"] == wanted])
        return True

    async def credentials(event: StanzaEvent) -> bool:
        if not allowed(event):
            raise StanzaError("forbidden", type="auth")
        asked = set()
        for service in event.stanza[0]:
            if not service.get("type") or not service.get("host"):
                raise StanzaError("bad-request", "The 'port' and 'type' attributes are required.")
            asked.add((service.get("type"), service.get("host"), service.get("port") or "0"))
        answer(
            event,
            [
                s
                for s in services()
                if s["restricted"]
                and (
                    (s["type"], s["host"], s["port"] or "0") in asked
                    or (s["type"], s["host"], "0") in asked
                )
            ],
        )
        return True

    for ns in NAMESPACES:
        module.add_feature(ns)
        module.hook(f"iq-get/host/{ns}:services")(list_services)
        module.hook(f"iq-get/host/{ns}:credentials")(credentials)

"""Service Outage Status (XEP-0455 0.3), the discovery part, as prosody-modules'
mod_service_outage_status: the host's disco#info carries a ``urn:xmpp:sos:0`` form (XEP-0128)
whose ``external-status-addresses`` are the ``outage_status_urls``, where clients read a JSON
outage document when the server is in trouble (or gone: the document should be served by
another machine, so this module serves nothing itself).

Stricter than Prosody, which publishes any string: the XEP says each value MUST be a URI, so a
value without a scheme (``status.example.net/status.json``) stops start-up instead of
reaching clients that cannot use it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from minixmpp.errors import ModuleError
from minixmpp.module import Module
from minixmpp.xml import dataforms as df

NS = "urn:xmpp:sos:0"
# RFC 3986's scheme, then something: what every absolute URI has (no whitespace anywhere)
URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")


@dataclass
class Options:
    outage_status_urls: list[str] = field(default_factory=list)


def load(module: Module) -> None:
    urls = module.options(Options).outage_status_urls
    for url in urls:
        if not URI.fullmatch(url):
            raise ModuleError(f"outage_status_urls: {url!r} is not a URI (https://…)")
    fields = [
        df.hidden("FORM_TYPE", NS),
        df.Field("external-status-addresses", "list-multi", values=urls),
    ]
    module.add_item("disco-extension", df.Form(type="result", fields=fields).element())

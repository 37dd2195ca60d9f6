"""Contact Addresses for XMPP Services (XEP-0157), as Prosody's mod_server_contact_info: the
host's disco#info carries a ``http://jabber.org/network/serverinfo`` form with the addresses
of ``contact_info`` (by default the admins, as ``xmpp:`` URIs)."""

from __future__ import annotations

from dataclasses import dataclass

from minixmpp.errors import ModuleError
from minixmpp.module import Module
from minixmpp.xml import dataforms as df

KINDS = ("abuse", "admin", "feedback", "sales", "security", "status", "support")


@dataclass
class Options:
    contact_info: dict[str, list[str]] | None = None  # { abuse = ["mailto:…"], admin = […] }


def load(module: Module) -> None:
    opts = module.options(Options)
    info = opts.contact_info
    if info is None:
        admins = sorted(set(module.host_options.admins))
        info = {"admin": [f"xmpp:{admin}" for admin in admins]}
    unknown = set(info) - set(KINDS)
    if unknown:
        raise ModuleError(
            f"contact_info: unknown kind {sorted(unknown)[0]!r} (one of {', '.join(KINDS)})"
        )
    fields = [df.hidden("FORM_TYPE", "http://jabber.org/network/serverinfo")]
    fields += [
        df.Field(f"{kind}-addresses", "list-multi", values=info.get(kind, ())) for kind in KINDS
    ]
    module.add_item("disco-extension", df.Form(type="result", fields=fields).element())

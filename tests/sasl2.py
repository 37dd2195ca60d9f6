"""SASL2 (XEP-0388), Bind 2 (XEP-0386) and FAST (XEP-0484) by hand, over a RawClient: the
requests written out as a client writes them, the replies checked as a client checks them
(scramp verifies SCRAM's server signature, the HT responder is recomputed here)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ssl
from dataclasses import dataclass

from lxml import etree
from scramp import ScramClient

from minixmpp.testing import TestServer
from tests.xmpp import RawClient

NS_SASL2 = "urn:xmpp:sasl:2"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND2 = "urn:xmpp:bind:0"
NS_FAST = "urn:xmpp:fast:0"
NS_CB = "urn:xmpp:sasl-cb:0"
UA_ID = "d4565fa7-4d72-4749-b3d3-740edbf87770"  # XEP-0388's example id


def agent(id: str | None = UA_ID, software: str = "minixmpp-tests") -> str:
    id_attr = f" id='{id}'" if id else ""
    return f"<user-agent{id_attr}><software>{software}</software></user-agent>"


def bind2(tag: str | None = "AwesomeXMPP", inner: str = "") -> str:
    tag_el = f"<tag>{tag}</tag>" if tag else ""
    return f"<bind xmlns='{NS_BIND2}'>{tag_el}{inner}</bind>"


def request_token(mechanism: str = "HT-SHA-256-NONE") -> str:
    return f"<request-token xmlns='{NS_FAST}' mechanism='{mechanism}'/>"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def condition(failure: etree._Element) -> str | None:
    """The RFC 6120 condition of a SASL2 ``<failure/>``."""
    assert failure.tag == f"{{{NS_SASL2}}}failure", etree.tostring(failure)
    return next(
        (etree.QName(c).localname for c in failure if etree.QName(c).namespace == NS_SASL), None
    )


def mechanisms(features: etree._Element, ns: str = NS_SASL2) -> list[str]:
    """The mechanisms a features element offers (SASL2's, or SASL's with ``ns``)."""
    parent = "authentication" if ns == NS_SASL2 else "mechanisms"
    return [m.text or "" for m in features.iterfind(f"{{{ns}}}{parent}/{{{ns}}}mechanism")]


def binding_types(features: etree._Element) -> list[str]:
    return [e.get("type") or "" for e in features.iter(f"{{{NS_CB}}}channel-binding")]


def ssdp(names: list[str], types: list[str], hash_name: str) -> str:
    """What XEP-0474 (0.4+) says the server's ``h=`` must be for what the client saw."""
    text = "\x1e".join(sorted(names)) + ("\x1f" + "\x1e".join(sorted(types)) if types else "")
    return b64(hashlib.new(hash_name, text.encode()).digest())


def scram_attributes(server_first: str) -> dict[str, str]:
    return dict(attr.split("=", 1) for attr in server_first.split(","))


async def connect(
    server: TestServer, maximum: ssl.TLSVersion | None = None
) -> tuple[RawClient, etree._Element]:
    """A client after STARTTLS, and the features it was offered."""
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    features = await client.starttls(server.ca_file, maximum=maximum)
    return client, features


async def authenticate(
    client: RawClient, mechanism: str, initial: bytes | None, extra: str = ""
) -> etree._Element:
    """Send ``<authenticate/>``; the server's first answer."""
    response = "" if initial is None else f"<initial-response>{b64(initial)}</initial-response>"
    await client.send(
        f"<authenticate xmlns='{NS_SASL2}' mechanism='{mechanism}'>{response}{extra}</authenticate>"
    )
    return await client.next()


@dataclass
class Scram2:
    reply: etree._Element  # <success/> or <failure/>
    server_first: str = ""


async def scram(
    client: RawClient,
    username: str,
    password: str,
    mechanism: str = "SCRAM-SHA-256",
    *,
    extra: str | None = None,
    channel_binding: tuple[str, bytes] | None = None,
) -> Scram2:
    """A SCRAM exchange over SASL2 (``extra``: what else goes into ``<authenticate/>``, by
    default a user agent); a ``<success/>``'s server signature is checked."""
    scram_client = ScramClient([mechanism], username, password, channel_binding=channel_binding)
    first = scram_client.get_client_first().encode()
    reply = await authenticate(client, mechanism, first, agent() if extra is None else extra)
    if reply.tag != f"{{{NS_SASL2}}}challenge":
        return Scram2(reply)
    server_first = base64.b64decode(reply.text or "").decode()
    scram_client.set_server_first(server_first)
    final = b64(scram_client.get_client_final().encode())
    await client.send(f"<response xmlns='{NS_SASL2}'>{final}</response>")
    reply = await client.next()
    if reply.tag == f"{{{NS_SASL2}}}success":
        data = reply.findtext(f"{{{NS_SASL2}}}additional-data") or ""
        scram_client.set_server_final(base64.b64decode(data).decode())  # raises if wrong
    return Scram2(reply, server_first)


def ht_message(username: str, token: str, cb: bytes = b"") -> bytes:
    proof = hmac.digest(token.encode(), b"Initiator" + cb, "sha256")
    return username.encode() + b"\0" + proof


async def fast(
    client: RawClient,
    username: str,
    token: str,
    mechanism: str = "HT-SHA-256-NONE",
    *,
    cb: bytes = b"",
    fast_attrs: str = "",
    extra: str | None = None,
) -> etree._Element:
    """A FAST login (``extra`` replaces the default user agent); a ``<success/>``'s
    responder HMAC is checked."""
    more = agent() if extra is None else extra
    reply = await authenticate(
        client,
        mechanism,
        ht_message(username, token, cb),
        f"{more}<fast xmlns='{NS_FAST}'{fast_attrs}/>",
    )
    if reply.tag == f"{{{NS_SASL2}}}success":
        data = base64.b64decode(reply.findtext(f"{{{NS_SASL2}}}additional-data") or "")
        assert data == hmac.digest(token.encode(), b"Responder" + cb, "sha256")
    return reply


def token_of(success: etree._Element) -> tuple[str, str]:
    """(token, expiry) of the ``<token/>`` in a ``<success/>``."""
    token = success.find(f"{{{NS_FAST}}}token")
    assert token is not None, etree.tostring(success)
    return token.get("token") or "", token.get("expiry") or ""


def end_point(client: RawClient) -> bytes:
    der = client.ssl_object.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).digest()  # the test certificates are signed with ECDSA-SHA256


def identifier(success: etree._Element) -> str:
    return success.findtext(f"{{{NS_SASL2}}}authorization-identifier") or ""


MODULES = ("disco", "ping", "sasl2", "sasl2_bind2", "sasl2_fast", "carbons", "csi")

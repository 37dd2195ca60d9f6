"""What the wire log shows of a stanza: never a password, a SASL payload or a whole token."""

from __future__ import annotations

import pytest
from lxml import etree

from minixmpp.xml.redact import for_log as redact
from modules.mod_invites._invite import TOKEN_IN_TEXT


def for_log(element: etree._Element) -> bytes:
    """As a server with mod_invites loaded logs it."""
    return redact(element, [TOKEN_IN_TEXT])


TOKEN = "l9QfCMngwcnx-mSRO1DIf-iG"


@pytest.mark.parametrize(
    ("xml", "secret"),
    [
        (f"<iq><preauth xmlns='urn:xmpp:pars:0' token = '{TOKEN}'/></iq>", TOKEN),
        (f"<presence><preauth xmlns='urn:xmpp:pars:0' token=\"{TOKEN}\"/></presence>", TOKEN),
        (
            "<iq><query xmlns='jabber:iq:register'><username>a</username>"
            "<password><![CDATA[cdata-Pw-1111]]></password></query></iq>",
            "cdata-Pw-1111",
        ),
        (
            "<iq><r:query xmlns:r='jabber:iq:register'><r:password>prefixed-Pw</r:password>"
            "</r:query></iq>",
            "prefixed-Pw",
        ),
        (
            "<iq><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"
            "<field var='password'><desc>d</desc><value>form-Pw-2222</value></field></x>"
            "</query></iq>",
            "form-Pw-2222",
        ),
        (
            "<iq><command xmlns='http://jabber.org/protocol/commands'><x xmlns='jabber:x:data'>"
            "<field var='password-verify' type='text-private'><value>verify-Pw</value></field>"
            "</x></command></iq>",
            "verify-Pw",
        ),
        (
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNl</auth>",
            "AGFsaWNl",
        ),
        (
            "<iq><command xmlns='http://jabber.org/protocol/commands'><x xmlns='jabber:x:data'>"
            f"<field var='uri'><value>xmpp:localhost?register;preauth={TOKEN}</value></field>"
            f"<field var='landing-url'><value>https://example.com/invite/{TOKEN}/</value></field>"
            "</x></command></iq>",
            TOKEN,
        ),
        (f"<message><body>join us: xmpp:a@b?roster;preauth={TOKEN};ibr=y</body></message>", TOKEN),
    ],
)
def test_secrets_are_cut_out(xml: str, secret: str) -> None:
    element = etree.fromstring(xml)
    before = etree.tostring(element)
    logged = for_log(element).decode()
    assert secret not in logged
    assert "[redacted]" in logged or f"{TOKEN[:4]}…" in logged
    assert etree.tostring(element) == before  # the stanza itself is untouched


def test_everything_else_is_kept() -> None:
    xml = (
        "<message to='bob@localhost/phone' id='abc123'><body>hello, see uuid"
        " 8f0c2e43-9b1d-4c55-a7e1-3f6d2b9c0a11 and id ShortId_12</body></message>"
    )
    assert for_log(etree.fromstring(xml)) == etree.tostring(etree.fromstring(xml))

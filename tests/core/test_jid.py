"""JID parsing and Prosody's stringprep preparation (protocol.md §6.3 step 5)."""

import pytest
from hypothesis import given
from hypothesis import strategies as s

from minixmpp.jid import JID, InvalidJID, nameprep, nodeprep, resourceprep


@pytest.mark.parametrize(
    ("raw", "prepared"),
    [
        ("Juliet", "juliet"),
        ("straße", "strasse"),
        ("ＡＢ", "ab"),  # noqa: RUF001 - full-width letters on purpose
        ("a;b?c#d=e", "a;b?c#d=e"),
        ("ÉCOLE", "école"),
        ("x\u00adY", "xy"),
    ],  # soft hyphen maps to nothing (B.1)
)
def test_nodeprep(raw: str, prepared: str) -> None:
    assert nodeprep(raw) == prepared


@pytest.mark.parametrize(
    "bad",
    [
        " ",
        "a b",
        "a\tb",
        'a"b',
        "a&b",
        "a'b",
        "a/b",
        "a:b",
        "a<b",
        "a>b",
        "a@b",
        "",
        "x" * 1024,
        "\u0627a",
        "a\u0000",
    ],
)
def test_nodeprep_rejects(bad: str) -> None:
    with pytest.raises(InvalidJID):
        nodeprep(bad)


def test_strict_nodeprep_rejects_unassigned() -> None:
    unassigned = "\u0221"  # unassigned in Unicode 3.2
    assert nodeprep("a" + unassigned) == "a" + unassigned
    with pytest.raises(InvalidJID):
        nodeprep("a" + unassigned, strict=True)


# Compared with Prosody's own nodeprep (libidn, Unicode 3.2) over 90,000 random strings: these
# are the kinds that differed while the standard library's current-Unicode lower case was used.
@pytest.mark.parametrize(
    ("raw", "strict", "prepared"),
    [
        ("\u03f9", True, None),  # capital lunate sigma: Unicode 4.0, not a sigma in 3.2
        ("\u037f", True, None),  # Greek capital yot: Unicode 7.0
        ("e\u0245", True, None),  # turned V: Unicode 5.0
        ("\u03f9", False, "\u03f9"),  # unassigned passes through a query unmapped
        ("\u2132", True, "\u2132"),  # turned F: in 3.2 without a lower case (U+214E is 5.0)
        ("\uff7d\u2183", True, "\u30b9\u2183"),  # reversed C likewise; NFKC still applies
        ("\u13a0", True, "\u13a0"),  # Cherokee: lower case only since Unicode 8.0
    ],
)
def test_nodeprep_uses_unicode_3_2_case_mapping(raw: str, strict: bool, prepared: str) -> None:
    if prepared is None:
        with pytest.raises(InvalidJID):
            nodeprep(raw, strict=strict)
    else:
        assert nodeprep(raw, strict=strict) == prepared


def test_too_long_before_preparation() -> None:
    # Prosody refuses 1024 bytes or more of input, even when preparation would shorten it
    assert nodeprep("b" + "\u00ad" * 510) == "b"  # 1021 bytes
    for text in ("b" + "\u00ad" * 600, "\uff21" * 342):
        with pytest.raises(InvalidJID):
            nodeprep(text)
        with pytest.raises(InvalidJID):
            resourceprep(text)


def test_bidi() -> None:
    assert nodeprep("\u0627\u0644\u0639") == "\u0627\u0644\u0639"  # all right-to-left
    with pytest.raises(InvalidJID):
        nodeprep("\u0627a\u0627")  # mixed directions


def test_resourceprep_keeps_case_and_spaces() -> None:
    assert resourceprep("My Phone") == "My Phone"
    with pytest.raises(InvalidJID):
        resourceprep("a\u0007")


def test_nameprep() -> None:
    assert nameprep("LocalHost.") == "localhost"
    assert nameprep("[::1]") == "[::1]"
    for bad in ("", "a..b", "a b", "a/b", "x" * 64 + ".com"):
        with pytest.raises(InvalidJID):
            nameprep(bad)


@pytest.mark.parametrize(
    ("text", "node", "domain", "resource"),
    [
        ("Juliet@Example.COM/Balcony", "juliet", "example.com", "Balcony"),
        ("example.com", None, "example.com", None),
        ("example.com/r/with/slashes", None, "example.com", "r/with/slashes"),
        ("a@b@c", "a", None, None),
    ],
)
def test_parse(text: str, node: str | None, domain: str | None, resource: str | None) -> None:
    if domain is None:
        with pytest.raises(InvalidJID):
            JID.parse(text)
        return
    jid = JID.parse(text)
    assert (jid.node, jid.domain, jid.resource) == (node, domain, resource)
    assert jid.bare == (f"{node}@{domain}" if node else domain)
    assert JID.parse(jid.full) == jid


@pytest.mark.parametrize("bad", ["", "@host", "user@", "user@host/", "/res"])
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(InvalidJID):
        JID.parse(bad)


@given(s.text(max_size=40))
def test_parse_never_crashes(text: str) -> None:
    try:
        jid = JID.parse(text)
    except InvalidJID:
        return
    assert JID.parse(jid.full) == jid  # prepared forms are stable


def test_immutable() -> None:
    jid = JID.parse("a@b/c")
    with pytest.raises(AttributeError):
        jid.node = "x"  # type: ignore[misc]

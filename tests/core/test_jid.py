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

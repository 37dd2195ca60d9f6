"""Properties of JIDs (minixmpp/jid.py): any text gives a JID or InvalidJID, preparation is
idempotent, prepared JIDs round-trip through their string forms, and the 1023-byte limits hold.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as s

from minixmpp.jid import JID, InvalidJID, nameprep, nodeprep, resourceprep
from tests.properties import examples

SETTINGS = examples(200)

# Characters that matter to JIDs: separators, ASCII, case pairs, what stringprep maps or
# refuses (soft hyphen, zero-width space, controls, full-width forms, combining marks),
# right-to-left letters, code points unassigned in Unicode 3.2, lone surrogates (argv bytes
# that are not UTF-8 arrive as these), and anything else.
SPECIAL = (
    "@/.@/. aZz09-_'\"&:<>\t\x00\x7f\u00ad\u200b\ufeffＡＢ\u0301ßİ\u03a3\u0627\u05d0"  # noqa: RUF001
    "\u0221\u03f9\u2132\U0001d400\ud800\udcff"
)
chars = s.sampled_from(SPECIAL) | s.characters() | s.characters(categories=["Cs"])
any_text = s.text(alphabet=chars, max_size=30)

label = s.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789-é", min_size=1, max_size=10)
domains = s.lists(label, min_size=1, max_size=3).map(".".join) | s.sampled_from(
    ["localhost", "[::1]", "example.com.", "EXAMPLE.com", "münchen.de"]
)
nodes = s.text(alphabet=chars.filter(lambda c: c not in "@/"), min_size=1, max_size=20)
resources = s.text(alphabet=chars, min_size=1, max_size=20)
jid_texts = any_text | s.builds(
    lambda n, d, r: f"{n + '@' if n else ''}{d}{'/' + r if r else ''}",
    s.none() | nodes,
    domains,
    s.none() | resources,
)


def parse(text: str, strict: bool = False) -> JID | None:
    try:
        return JID.parse(text, strict=strict)
    except InvalidJID:
        return None


@SETTINGS
@given(jid_texts, s.booleans())
def test_any_text_gives_a_jid_or_invalid_jid(text: str, strict: bool) -> None:
    """Nothing but InvalidJID, whatever the text (parse() lets anything else propagate)."""
    parse(text, strict)


@SETTINGS
@given(jid_texts, s.booleans())
def test_a_prepared_jid_round_trips(text: str, strict: bool) -> None:
    jid = parse(text, strict)
    if jid is None:
        return
    assert JID.parse(jid.full, strict=strict) == jid
    again = JID.parse(jid.full, strict=strict)
    assert (again.node, again.domain, again.resource) == (jid.node, jid.domain, jid.resource)
    assert str(jid) == jid.full and hash(again) == hash(jid)
    assert JID.parse(jid.bare) == jid.bare_jid
    assert jid.bare_jid.resource is None and jid.bare_jid.bare == jid.bare
    assert jid.full == jid.bare + (f"/{jid.resource}" if jid.resource else "")
    assert jid.bare == (f"{jid.node}@{jid.domain}" if jid.node else jid.domain)
    assert jid.with_resource(jid.resource) == jid


@SETTINGS
@given(any_text, s.booleans())
def test_preparation_is_idempotent(text: str, strict: bool) -> None:
    for prep in (nodeprep, nameprep, resourceprep):
        try:
            once = prep(text, strict)
        except InvalidJID:
            continue
        assert prep(once, strict) == once, prep.__name__


@SETTINGS
@given(jid_texts)
def test_strict_preparation_only_refuses_more(text: str) -> None:
    """strict (for stored identifiers) refuses unassigned code points; what it accepts, the
    lax form (for queries) prepares the same way."""
    strict = parse(text, strict=True)
    if strict is not None:
        assert parse(text) == strict


@SETTINGS
@given(s.none() | nodes, domains, s.none() | resources)
def test_the_parts_are_found_where_they_were_put(
    node: str | None, domain: str, resource: str | None
) -> None:
    """A localpart has no '@' or '/', so the first '@' before the first '/' ends it; the
    resource is everything after the first '/', '@' and '/' included."""
    text = f"{node + '@' if node else ''}{domain}{'/' + resource if resource else ''}"
    jid = parse(text)
    try:
        parts = (
            nodeprep(node) if node else None,
            nameprep(domain),
            resourceprep(resource) if resource else None,
        )
    except InvalidJID:
        assert jid is None
        return
    assert jid is not None
    assert (jid.node, jid.domain, jid.resource) == parts


@SETTINGS
@given(
    # at most 63: one DNS label (RFC 5890 §2.3.2.1), beyond which a domain part is refused
    s.text(
        alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        min_size=1,
        max_size=63,
    )
)
def test_ascii_localparts_and_domains_ignore_case_resources_keep_it(text: str) -> None:
    assert nodeprep(text.upper()) == nodeprep(text.lower()) == text.lower()
    assert nameprep(text.upper()) == text.lower()
    assert resourceprep(text) == text


@examples(60)
@given(
    s.integers(min_value=1, max_value=1100),
    s.sampled_from(["a", "é", "中", "\U0001d4d0", "\u00ad", "\u3300"]),
    s.sampled_from([nodeprep, resourceprep]),
)
def test_a_part_over_1023_bytes_is_refused(count: int, char: str, prep: object) -> None:
    """RFC 6122 §2.1: at most 1023 bytes, counted on the input as Prosody does (so a part that
    preparation would shorten is refused too), and on the result (U+3300 grows fourfold)."""
    text = "b" + char * count
    size = len(text.encode())
    try:
        prepared = prep(text)  # type: ignore[operator]
    except InvalidJID:
        assert size > 1023 or (char == "\u3300" and 1 + 12 * count > 1023)
        return
    assert size <= 1023
    assert len(prepared.encode()) <= 1023


@examples(60)
@given(s.integers(min_value=1, max_value=80), s.integers(min_value=1, max_value=20))
def test_domain_labels_over_63_bytes_are_refused(size: int, labels: int) -> None:
    domain = ".".join(["d" * size] * labels)
    prepared = parse(domain)
    if size > 63 or len(domain) > 1023:
        assert prepared is None
    else:
        assert prepared is not None and prepared.domain == domain


# -- what the properties found (regressions) ---------------------------------------------------


@pytest.mark.parametrize("text", ["\udcff@localhost", "a@\udcff", "a@localhost/\udcff", "\ud800"])
def test_a_lone_surrogate_is_an_invalid_jid(text: str) -> None:
    """Found by the first property: a lone surrogate raised UnicodeEncodeError (the byte limit
    encodes the part first). Command-line arguments that are not UTF-8 arrive as such."""
    with pytest.raises(InvalidJID):
        JID.parse(text)


def test_the_cli_refuses_a_jid_that_is_not_utf8(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text(
        'interfaces = ["127.0.0.1"]\nc2s_ports = [0]\nc2s_direct_tls_ports = [0]\n'
        '[VirtualHost."localhost"]\n'
    )
    jid = b"\xff@localhost".decode("utf-8", "surrogateescape")  # as argv gives it
    result = subprocess.run(
        [sys.executable, "-m", "minixmpp", "user", "add", jid, "pw", "-c", str(config)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert b"Traceback" not in result.stderr
    assert b"invalid JID" in result.stderr

"""Properties of data forms (XEP-0004, minixmpp/xml/dataforms.py and the ad-hoc form reader):
a form written by the server and read back over the wire gives what it held, and any
submitted ``<x/>``, however malformed, is read without an exception.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as s
from lxml import etree

from minixmpp.adhoc import read_form
from minixmpp.jid import JID, InvalidJID
from minixmpp.xml import dataforms
from minixmpp.xml import stanza as st
from minixmpp.xml.dataforms import NS_DATA, Field, Form
from minixmpp.xml.parser import StanzaReceived, StreamParser
from tests.properties import examples
from tests.properties.xmlgen import xml_text

SETTINGS = examples(60)
HEADER = (
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    b" to='localhost' version='1.0'>"
)
TYPES = [
    "boolean", "fixed", "hidden", "jid-multi", "jid-single", "list-multi", "list-single",
    "text-multi", "text-private", "text-single",
]  # fmt: skip
D = f"{{{NS_DATA}}}"

fields = s.builds(
    Field,
    var=s.sampled_from(["FORM_TYPE", "username", "accountjid", "x", ""]) | xml_text,
    type=s.sampled_from(TYPES),
    label=s.none() | xml_text,
    desc=s.none() | xml_text,
    required=s.booleans(),
    values=s.lists(xml_text, max_size=3).map(tuple),
    options=s.lists(s.tuples(s.none() | xml_text, xml_text), max_size=3).map(tuple),
)
forms = s.builds(
    Form,
    type=s.sampled_from(["form", "result", "submit", "cancel"]),
    title=s.none() | xml_text,
    instructions=s.none() | xml_text,
    fields=s.lists(fields, max_size=5),
)


def over_the_wire(x: etree._Element) -> etree._Element:
    """``x`` in a message, serialised, and parsed again as the server parses input."""
    message = st.element("message", {"to": "localhost"})
    message.append(x)
    _, event = StreamParser().feed(HEADER + st.tostring(message))
    assert isinstance(event, StanzaReceived)
    found = event.element.find(dataforms.X)
    assert found is not None
    return found


def read_back(x: etree._Element) -> Form:
    """The form a client reads from ``x`` (XEP-0004 §3), as an independent reader."""

    def text(el: etree._Element, tag: str) -> str | None:
        child = el.find(D + tag)
        return None if child is None else child.text or ""

    return Form(
        type=x.get("type", ""),
        title=text(x, "title"),
        instructions=text(x, "instructions"),
        fields=[
            Field(
                var=f.get("var", ""),
                type=f.get("type", ""),
                label=f.get("label"),
                desc=text(f, "desc"),
                required=f.find(D + "required") is not None,
                values=tuple(v.text or "" for v in f.iterchildren(D + "value")),
                options=tuple(
                    (o.get("label"), o.findtext(D + "value") or "")
                    for o in f.iterchildren(D + "option")
                ),
            )
            for f in x.iterchildren(D + "field")
        ],
    )


@SETTINGS
@given(forms)
def test_a_form_round_trips_over_the_wire(form: Form) -> None:
    x = over_the_wire(form.element())
    assert read_back(x) == form
    expected: dict[str, list[str]] = {}
    for f in form.fields:
        expected.setdefault(f.var, []).extend(f.values)
    assert dataforms.submitted(x) == expected


# -- submitted forms, however malformed ----------------------------------------------------

names = s.sampled_from(["field", "value", "option", "required", "x", "desc", "junk"])
namespaces = s.sampled_from([NS_DATA, NS_DATA, NS_DATA, "jabber:client", "urn:other"])
attributes = s.dictionaries(
    s.sampled_from(["var", "type", "label", "junk"]),
    s.sampled_from(["", "FORM_TYPE", "accountjid", "1", "true", "a b@c", "x"]) | xml_text,
    max_size=3,
)


@s.composite
def elements(draw: s.DrawFn, depth: int = 0) -> etree._Element:
    el = etree.Element(f"{{{draw(namespaces)}}}{draw(names)}", draw(attributes))
    el.text = draw(s.none() | s.sampled_from(["", "1", "true", "0", "a@b", "@@"]) | xml_text)
    if depth < 2:
        for child in draw(s.lists(elements(depth + 1), max_size=3)):
            el.append(child)
    return el


submissions = s.builds(
    lambda children, type: _x(children, type),
    s.lists(elements(), max_size=4),
    s.none() | s.sampled_from(["submit", "cancel", "form", ""]),
)


def _x(children: list[etree._Element], type: str | None) -> etree._Element:
    x = etree.Element(dataforms.X, {"type": type} if type is not None else {})
    x.extend(children)
    return x


@SETTINGS
@given(submissions, s.sampled_from(["FORM_TYPE", "accountjid", "x", ""]))
def test_any_submission_is_read_without_an_exception(x: etree._Element, var: str) -> None:
    values = dataforms.submitted(x)
    fields = [f for f in x.iterchildren(D + "field")]
    assert set(values) == {f.get("var", "") for f in fields}
    assert sum(len(v) for v in values.values()) == sum(
        len(list(f.iterchildren(D + "value"))) for f in fields
    )
    assert all(isinstance(v, str) for vs in values.values() for v in vs)
    first = dataforms.first(values, var)
    assert first is None or (first in values[var] and first)
    assert dataforms.boolean(values, var) is (first in ("1", "true"))


@SETTINGS
@given(submissions, s.lists(fields, max_size=4, unique_by=lambda f: f.var))
def test_the_command_form_reader_reports_problems_never_exceptions(
    x: etree._Element, form_fields: list[Field]
) -> None:
    """What an ad-hoc command gets from a submitted form (Prosody's data form checks): only
    the form's fields, JIDs prepared, and a problem for each missing required value or bad
    JID."""
    form = Form(fields=form_fields)
    values, problems = read_form(form, x)
    assert set(values) == {f.var for f in form_fields}
    for f in form_fields:
        if f.type.startswith("jid"):
            for value in values[f.var]:
                assert JID.parse(value).full == value
        submitted = [v for v in dataforms.submitted(x).get(f.var, []) if v]
        bad = [v for v in submitted if f.type.startswith("jid") and not _is_jid(v)]
        for v in bad:
            assert f"{f.var}: Invalid JID: {v}" in problems
        if f.required and not submitted:
            assert f"{f.var}: Required value missing" in problems
    if not problems:
        assert all(values[f.var] or not f.required for f in form_fields)


def _is_jid(text: str) -> bool:
    try:
        JID.parse(text)
    except InvalidJID:
        return False
    return True


@SETTINGS
@given(submissions)
def test_a_submission_survives_the_wire(x: etree._Element) -> None:
    """Whatever a client submits reads the same after the server has parsed it."""
    assert dataforms.submitted(over_the_wire(x)) == dataforms.submitted(x)

"""Data forms (XEP-0004): building forms and results, reading what was submitted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lxml import etree

from minixmpp.xml import stanza as st

NS_DATA = "jabber:x:data"
X = f"{{{NS_DATA}}}x"
NS_VALIDATE = "http://jabber.org/protocol/xdata-validate"


@dataclass(frozen=True)
class Field:
    var: str
    type: str = "text-single"
    label: str | None = None
    desc: str | None = None
    required: bool = False
    values: Sequence[str] = ()
    options: Sequence[tuple[str | None, str]] = ()  # (label, value) of list fields
    datatype: str | None = None  # XEP-0122 validation, e.g. "xs:dateTime" (in forms only)


@dataclass
class Form:
    """A form (``type='form'``), or a result (``type='result'``) with ``fields``."""

    type: str = "form"
    title: str | None = None
    instructions: str | None = None
    fields: list[Field] = field(default_factory=list)

    def element(self) -> etree._Element:
        x = st.element(X, {"type": self.type})
        if self.title is not None:
            st.sub(x, f"{{{NS_DATA}}}title", text=self.title)
        if self.instructions is not None:
            st.sub(x, f"{{{NS_DATA}}}instructions", text=self.instructions)
        for f in self.fields:
            el = st.sub(x, f"{{{NS_DATA}}}field", {"var": f.var, "label": f.label, "type": f.type})
            if f.desc is not None:
                st.sub(el, f"{{{NS_DATA}}}desc", text=f.desc)
            if f.required:
                st.sub(el, f"{{{NS_DATA}}}required")
            if f.datatype is not None and self.type == "form":
                st.sub(el, f"{{{NS_VALIDATE}}}validate", {"datatype": f.datatype})
            for value in f.values:
                st.sub(el, f"{{{NS_DATA}}}value", text=value)
            for label, value in f.options:
                option = st.sub(el, f"{{{NS_DATA}}}option", {"label": label})
                st.sub(option, f"{{{NS_DATA}}}value", text=value)
        return x


def hidden(var: str, value: str) -> Field:
    return Field(var, "hidden", values=(value,))


def submitted(x: etree._Element | None) -> dict[str, list[str]]:
    """The values of a submitted form by ``var`` (every ``<value/>`` of each field)."""
    if x is None:
        return {}
    found: dict[str, list[str]] = {}
    for el in x.iterchildren(f"{{{NS_DATA}}}field"):
        values = [v.text or "" for v in el.iterchildren(f"{{{NS_DATA}}}value")]
        found.setdefault(el.get("var", ""), []).extend(values)
    return found


def first(values: dict[str, list[str]], var: str) -> str | None:
    """The first value of ``var``, or None if absent or empty."""
    return next((v for v in values.get(var, ()) if v), None)


def boolean(values: dict[str, list[str]], var: str) -> bool:
    return first(values, var) in ("1", "true")

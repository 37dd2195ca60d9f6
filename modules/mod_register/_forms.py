"""The registration form (XEP-0077 with XEP-0004 data forms): Prosody's extra fields, building
the form, and reading a submission, data form or legacy children."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lxml import etree

from minixmpp.config import ConfigError
from minixmpp.xml import dataforms
from minixmpp.xml import stanza as st

if TYPE_CHECKING:
    from . import Options

NS_REGISTER = "jabber:iq:register"
QUERY = f"{{{NS_REGISTER}}}query"

# Prosody's known extra fields (additional_registration_fields; a trailing '+': required)
KNOWN_FIELDS = {
    "nick": "Nickname",
    "name": "Full Name",
    "first": "Given Name",
    "last": "Family Name",
    "email": "Email",
    "address": "Street",
    "city": "City",
    "state": "State",
    "zip": "Postal code",
    "phone": "Telephone number",
    "url": "Webpage",
    "date": "Birth date",
}
FIELD_TYPES = {  # XEP-0004 §3.3
    "boolean", "fixed", "hidden", "jid-multi", "jid-single", "list-multi", "list-single",
    "text-multi", "text-private", "text-single",
}  # fmt: skip
MULTI = {"jid-multi", "list-multi", "text-multi"}  # their values are kept one per line
VALUE = f"{{{dataforms.NS_DATA}}}value"


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    label: str | None = None
    required: bool = False
    legacy: bool = True  # also offered and read as a child element of <query/>
    desc: str | None = None
    options: tuple[tuple[str | None, str], ...] = ()  # (label, value) of list fields
    values: tuple[str, ...] = ()  # shown in the form: a default, or a fixed field's text


BASE_FIELDS = (
    Field("username", "text-single", "Username", required=True),
    Field("password", "text-private", "Password", required=True),
)


def extra_fields(entries: list[str | dict[str, Any]], where: str) -> list[Field]:
    fields = []
    for entry in entries:
        if isinstance(entry, str):
            name = entry.removesuffix("+")
            if name not in KNOWN_FIELDS:
                known = ", ".join(KNOWN_FIELDS)
                raise ConfigError(f"{where}: unknown registration field {entry!r} ({known})")
            fields.append(Field(name, "text-single", KNOWN_FIELDS[name], entry.endswith("+")))
            continue
        fields.append(field_table(entry, where))
    return fields


def field_table(entry: dict[str, Any], where: str) -> Field:
    """A field written as a table, as Prosody's data form fields are: ``name`` (or ``var``),
    ``type``, ``label``, ``desc``, ``required``, ``value`` (a default), ``options`` (values, or
    tables with ``label`` and ``value``). Read from the data form only."""
    name, kind = entry.get("name", entry.get("var")), entry.get("type", "text-single")
    if not isinstance(name, str) or not name or kind not in FIELD_TYPES:
        raise ConfigError(
            f"{where}: a field table needs a 'name' and a 'type' among {sorted(FIELD_TYPES)}"
        )
    unknown = set(entry) - {"name", "var", "type", "label", "desc", "required", "value", "options"}
    if unknown:
        raise ConfigError(f"{where}: registration field {name!r}: unknown key {sorted(unknown)}")
    label, desc = entry.get("label"), entry.get("desc")
    if not all(isinstance(x, str | None) for x in (label, desc)):
        raise ConfigError(f"{where}: registration field {name!r}: label and desc are text")
    default = entry.get("value", [])
    values = [default] if isinstance(default, str | bool) else default
    if not isinstance(values, list) or not all(isinstance(v, str | bool) for v in values):
        raise ConfigError(f"{where}: registration field {name!r}: value is text or a list")
    options: list[tuple[str | None, str]] = []
    for option in entry.get("options", []):
        if isinstance(option, str):
            options.append((None, option))
        elif isinstance(option, dict) and isinstance(option.get("value"), str):
            text = option.get("label")
            options.append((text if isinstance(text, str) else None, option["value"]))
        else:
            raise ConfigError(
                f"{where}: registration field {name!r}: an option is a value or a table with"
                " 'value' (and 'label')"
            )
    return Field(
        name, kind, label, entry.get("required") is True, legacy=False, desc=desc,
        options=tuple(options),
        values=tuple(("1" if v else "0") if isinstance(v, bool) else v for v in values),
    )  # fmt: skip


def registration_form(opts: Options, fields: list[Field]) -> etree._Element:
    """The ``<query/>`` of the unauthenticated get: legacy children and the data form."""
    query = st.element(QUERY)
    st.sub(query, f"{{{NS_REGISTER}}}instructions", text=opts.registration_instructions)
    for f in fields:
        if f.legacy:
            st.sub(query, f"{{{NS_REGISTER}}}{f.name}")
    form = dataforms.Form(
        "form",
        opts.registration_title,
        opts.registration_instructions,
        [
            dataforms.hidden("FORM_TYPE", NS_REGISTER),
            *(
                dataforms.Field(f.name, f.type, f.label, f.desc, f.required, f.values, f.options)
                for f in fields
            ),
        ],
    )
    query.append(form.element())
    return query


def title(name: str) -> str:
    """A field name as Prosody's messages start it: first letter upper-case (``favColour`` →
    ``FavColour``), the rest as it is."""
    return name[:1].upper() + name[1:]


def parse(query: etree._Element, fields: list[Field]) -> tuple[dict[str, str], list[str]]:
    """The submitted values and the problems, as Prosody reads them: the data form if there is
    one (FORM_TYPE kept among the values), else the legacy children."""
    values: dict[str, str] = {}
    problems: list[str] = []
    form = query.find(f"{{{dataforms.NS_DATA}}}x")
    if form is not None:
        submitted: dict[str, list[etree._Element]] = {}
        for el in form.iterchildren(f"{{{dataforms.NS_DATA}}}field"):
            submitted.setdefault(el.get("var", ""), []).append(el)
        hidden = submitted.get("FORM_TYPE")
        if hidden:
            values["FORM_TYPE"] = hidden[0].findtext(f"{{{dataforms.NS_DATA}}}value") or ""
        for f in fields:
            found = submitted.get(f.name, [])
            if len(found) > 1:
                problems.append(f"{title(f.name)}: Duplicate field")
                continue
            given = [v.text or "" for el in found for v in el.iterchildren(VALUE)]
            value = "\n".join(given) if f.type in MULTI else (given[0] if given else None)
            if value:
                values[f.name] = value
            elif f.required:
                problems.append(f"{title(f.name)}: Required value missing")
        return values, problems
    for f in fields:
        if not f.legacy:
            continue
        value = query.findtext(f"{{{NS_REGISTER}}}{f.name}")
        if value:
            values[f.name] = value
        elif f.required:
            problems.append(f"{title(f.name)}: Required value missing")
    return values, problems

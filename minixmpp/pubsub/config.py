"""Node configuration (XEP-0060 §8.2): its values, and the data forms that carry them.

A node's configuration is a plain dict of Prosody's keys (``max_items``, ``access_model``,
``notify_items``, …), stored as JSON with the node; ``FIELDS`` maps each to its form field
(``pubsub#max_items``, ``pubsub#deliver_notifications``, …). Reading a submitted form gives only
the fields it carries (so ``publish-options`` compares only what the publisher asked for),
checked by type: an unknown field is ignored, a bad value is ``bad-request`` with Prosody's
"key: reason" text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree

from minixmpp.errors import StanzaError
from minixmpp.xml import dataforms as df
from minixmpp.xml import stanza as st

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
FORM_NODE_CONFIG = f"{NS_PUBSUB}#node_config"
FORM_PUBLISH_OPTIONS = f"{NS_PUBSUB}#publish-options"
FORM_META_DATA = f"{NS_PUBSUB}#meta-data"
FORM_SUBSCRIBE_OPTIONS = f"{NS_PUBSUB}#subscribe_options"
NS_VALIDATE = "http://jabber.org/protocol/xdata-validate"

ACCESS_MODELS = ("authorize", "open", "presence", "roster", "whitelist")
MAX_TEXT = 1024  # characters of a title, description or payload type
MAX_GROUPS = 100  # roster groups a node may name


@dataclass(frozen=True)
class ConfigField:
    key: str  # Prosody's name, as stored
    var: str  # the form field
    type: str
    label: str | None = None
    options: tuple[str, ...] = ()


FIELDS = (
    ConfigField("title", "pubsub#title", "text-single", "Title"),
    ConfigField("description", "pubsub#description", "text-single", "Description"),
    ConfigField(
        "payload_type",
        "pubsub#type",
        "text-single",
        "The type of node data, usually specified by the namespace of the payload (if any)",
    ),
    ConfigField("max_items", "pubsub#max_items", "text-single", "Max # of items to persist"),
    ConfigField("persist_items", "pubsub#persist_items", "boolean", "Persist items to storage"),
    ConfigField(
        "access_model",
        "pubsub#access_model",
        "list-single",
        "Specify the subscriber model",
        ACCESS_MODELS,
    ),
    ConfigField(
        "roster_groups_allowed",
        "pubsub#roster_groups_allowed",
        "list-multi",
        "Roster groups allowed to subscribe",
    ),
    ConfigField(
        "publish_model",
        "pubsub#publish_model",
        "list-single",
        "Specify the publisher model",
        ("publishers", "subscribers", "open"),
    ),
    ConfigField(
        "send_last_published_item",
        "pubsub#send_last_published_item",
        "list-single",
        None,
        ("never", "on_sub", "on_sub_and_presence"),
    ),
    ConfigField(
        "notify_items",
        "pubsub#deliver_notifications",
        "boolean",
        "Whether to deliver event notifications",
    ),
    ConfigField(
        "include_payload",
        "pubsub#deliver_payloads",
        "boolean",
        "Whether to deliver payloads with event notifications",
    ),
    ConfigField(
        "notification_type",
        "pubsub#notification_type",
        "list-single",
        "Specify the delivery style for notifications",
        ("normal", "headline"),
    ),
    ConfigField(
        "notify_delete",
        "pubsub#notify_delete",
        "boolean",
        "Whether to notify subscribers when the node is deleted",
    ),
    ConfigField(
        "notify_retract",
        "pubsub#notify_retract",
        "boolean",
        "Whether to notify subscribers when items are removed from the node",
    ),
)
BY_VAR = {f.var: f for f in FIELDS}

# What a node has unless its service or its creator says otherwise (Prosody's util.pubsub).
DEFAULTS: dict[str, Any] = {
    "persist_items": True,
    "max_items": 20,
    "access_model": "open",
    "publish_model": "publishers",
    "send_last_published_item": "never",
    "notify_items": True,
    "include_payload": True,
    "notification_type": "headline",
    "notify_delete": True,
    "notify_retract": True,
}


def item_limit(value: Any, service_max: int) -> int:
    """A node's ``max_items`` as a number (``"max"`` is the service's maximum)."""
    return service_max if value == "max" else int(value)


def read_form(
    x: etree._Element | None, service_max: int, *, form_type: str | None = None
) -> dict[str, Any]:
    """The configuration values a submitted form carries (bad-request if one is invalid).
    ``form_type``: the FORM_TYPE it must have, when it has one."""
    if x is None or x.tag != df.X:
        raise StanzaError("bad-request", "Missing dataform")
    values = df.submitted(x)
    given = df.first(values, "FORM_TYPE")
    if form_type is not None and given is not None and given != form_type:
        raise StanzaError("bad-request", f"FORM_TYPE: expected {form_type}")
    config: dict[str, Any] = {}
    errors: list[str] = []
    for var, raw in values.items():
        spec = BY_VAR.get(var)
        if spec is None:
            continue  # Prosody ignores fields it does not know
        try:
            config[spec.key] = _read(spec, raw, service_max)
        except ValueError as exc:
            errors.append(f"{spec.key}: {exc}")
    if errors:
        raise StanzaError("bad-request", "; ".join(errors))
    return config


def _read(spec: ConfigField, raw: list[str], service_max: int) -> Any:
    if spec.type == "list-multi":
        if len(raw) > MAX_GROUPS or any(len(v) > MAX_TEXT for v in raw):
            raise ValueError("too many or too long values")
        return sorted(set(raw))
    value = raw[0] if raw else ""
    if spec.type == "boolean":
        if value in ("1", "true"):
            return True
        if value in ("0", "false"):
            return False
        raise ValueError(f"Invalid boolean representation: {value}"[: MAX_TEXT + 40])
    if spec.key == "max_items":
        if value == "max":
            return "max"
        try:
            number = int(value)
        except ValueError:
            raise ValueError("not a number") from None
        if not 1 <= number <= service_max:
            raise ValueError("out of bounds")
        return number
    if spec.options and value not in spec.options:
        raise ValueError("not one of the options")
    if len(value) > MAX_TEXT:
        raise ValueError("too long")
    return value or None


def form(config: Mapping[str, Any], service_max: int, type: str = "form") -> etree._Element:
    """The node_config form with ``config``'s values (Prosody's layout)."""
    x = st.element(df.X, {"type": type})
    _field(x, "FORM_TYPE", "hidden", None, [FORM_NODE_CONFIG])
    for spec in FIELDS:
        value = config.get(spec.key)
        if spec.type == "boolean":
            values = [] if value is None else ["1" if value else "0"]
        elif spec.type == "list-multi":
            values = list(value or [])
        else:
            values = [] if value is None else [str(value)]
        el = _field(x, spec.var, spec.type, spec.label, values, spec.options)
        if spec.key == "max_items":
            validate = st.element(
                f"{{{NS_VALIDATE}}}validate", {"datatype": "pubsub:integer-or-max"}
            )
            st.sub(validate, f"{{{NS_VALIDATE}}}range", {"min": "1", "max": str(service_max)})
            el.insert(0, validate)
    return x


def metadata_form(config: Mapping[str, Any]) -> etree._Element:
    """The ``pubsub#meta-data`` result form of a node (disco#info on a node)."""
    x = st.element(df.X, {"type": "result"})
    _field(x, "FORM_TYPE", "hidden", None, [FORM_META_DATA])
    for key, var in (
        ("title", "pubsub#title"),
        ("description", "pubsub#description"),
        ("payload_type", "pubsub#type"),
        ("access_model", "pubsub#access_model"),
        ("publish_model", "pubsub#publish_model"),
    ):
        value = config.get(key)
        _field(x, var, "text-single", None, [] if value is None else [str(value)])
    return x


def subscribe_options_form(options: Mapping[str, Any]) -> etree._Element:
    """The subscription options form (only ``pubsub#include_body``, as Prosody)."""
    x = st.element(df.X, {"type": "form"})
    _field(x, "FORM_TYPE", "hidden", None, [FORM_SUBSCRIBE_OPTIONS])
    value = options.get("pubsub#include_body")
    _field(
        x,
        "pubsub#include_body",
        "boolean",
        "Receive message body in addition to payload?",
        [] if value is None else ["1" if value else "0"],
    )
    return x


def read_subscribe_options(x: etree._Element | None) -> dict[str, Any]:
    """Submitted subscription options; unknown fields are ignored (bounded: one boolean)."""
    if x is None or x.tag != df.X:
        raise StanzaError("bad-request", "Missing dataform")
    value = df.first(df.submitted(x), "pubsub#include_body")
    if value is None:
        return {}
    if value not in ("0", "1", "false", "true"):
        raise StanzaError("bad-request", "pubsub#include_body: Invalid boolean representation")
    return {"pubsub#include_body": value in ("1", "true")}


def _field(
    x: etree._Element,
    var: str,
    type: str,
    label: str | None,
    values: list[str],
    options: tuple[str, ...] = (),
) -> etree._Element:
    ns = f"{{{df.NS_DATA}}}"
    el = st.sub(x, f"{ns}field", {"var": var, "label": label, "type": type})
    for option in options:
        st.sub(st.sub(el, f"{ns}option", {"label": option}), f"{ns}value", text=option)
    for value in values:
        st.sub(el, f"{ns}value", text=value)
    return el

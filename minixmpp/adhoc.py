"""Ad-hoc command types (XEP-0050): what a module provides as an ``adhoc`` item and what its
handler gets and answers. mod_adhoc speaks the protocol."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lxml import etree

from minixmpp.jid import JID, InvalidJID
from minixmpp.xml import dataforms

if TYPE_CHECKING:
    from minixmpp.module import Module


@dataclass
class Request:
    """One stage of a command, as the requester sent it."""

    requester: JID
    action: str  # execute | next | prev | complete | cancel
    form: etree._Element | None  # the submitted <x xmlns='jabber:x:data'/>, if any
    state: Any  # what the previous stage kept (None at first)
    admin: bool
    module: Module

    @property
    def values(self) -> dict[str, list[str]]:
        return dataforms.submitted(self.form)


@dataclass
class Reply:
    """What a stage answers."""

    status: str = "completed"  # executing | completed | canceled
    form: dataforms.Form | None = None
    notes: list[tuple[str, str]] = field(default_factory=list)  # (info | warn | error, text)
    actions: tuple[str, ...] = ("complete",)  # with executing: next, prev, complete
    default: str | None = None  # the action a plain execute means
    state: Any = None  # kept for the next stage
    other: etree._Element | None = None  # sent as is instead of ``form`` (Prosody's ``other``)


@dataclass(frozen=True)
class Command:
    node: str
    name: str
    handler: Callable[[Request], Awaitable[Reply]]
    permission: str = "admin"  # admin | local_user | any


Handler = Callable[[Request], Awaitable[Reply]]


def read_form(
    form: dataforms.Form, x: etree._Element | None
) -> tuple[dict[str, list[str]], list[str]]:
    """The values of a submitted ``form`` and what is wrong with them, as Prosody's data forms
    say it (``accountjid: Required value missing``, ``accountjid: Invalid JID: …``)."""
    submitted = dataforms.submitted(x)
    values: dict[str, list[str]] = {}
    problems = []
    for f in form.fields:
        given = [v for v in submitted.get(f.var, []) if v]
        invalid = False
        if f.type.startswith("jid"):
            prepared = []
            for text in given:
                try:
                    prepared.append(JID.parse(text).full)
                except InvalidJID:
                    problems.append(f"{f.var}: Invalid JID: {text}")
                    invalid = True
            given = prepared
        if not given and f.required and not invalid:
            problems.append(f"{f.var}: Required value missing")
        values[f.var] = given
    return values, problems


def simple(
    form: dataforms.Form, submit: Callable[[dict[str, list[str]], Request], Awaitable[Reply]]
) -> Handler:
    """A command in two steps, as Prosody's util.adhoc.new_simple_form: ``form`` first, then
    ``submit`` with its checked values (a form with problems completes with an error note)."""

    async def handler(request: Request) -> Reply:
        if request.state is None:  # a form sent with the first execute is not read (Prosody)
            actions = ("next", "complete")
            return Reply("executing", form, actions=actions, default="complete", state="form")
        values, problems = read_form(form, request.form)
        if problems:
            return Reply(notes=[("error", "\n".join(problems))])
        return await submit(values, request)

    return handler

"""Ad-hoc commands (XEP-0050), as Prosody's mod_adhoc offers them.

Modules add commands as items of kind ``adhoc`` (``minixmpp.adhoc.Command``); nothing here
changes to add one. A command's handler gets a ``Request`` (the action, the submitted form, its
state from the previous stage) and answers a ``Reply``: ``executing`` with a form and the
actions allowed, or ``completed``/``canceled`` with a result form and notes; a
``StanzaError`` it raises is the reply. Permissions are Prosody's: ``admin`` (the host's
admins), ``local_user`` (accounts of this host), ``any``.

Discovery: the host lists ``http://jabber.org/protocol/commands``; disco#items on that node lists
the commands the requester may run, sorted by node, each with the host as ``jid``; disco#info
on a command node gives its identity (``automation/command-node``).

Where Prosody is lax this follows XEP-0050: a ``sessionid`` that is unknown, expired or another
user's is ``bad-request`` with ``<bad-sessionid/>`` (Prosody starts the command afresh); a
session lasts ``adhoc_session_timeout`` seconds, and each user may hold a few at a time.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from lxml import etree

from minixmpp.adhoc import Command, Reply, Request
from minixmpp.errors import StanzaError
from minixmpp.events import StanzaEvent
from minixmpp.jid import JID
from minixmpp.module import Module
from minixmpp.xml import dataforms
from minixmpp.xml import stanza as st

NS_COMMANDS = "http://jabber.org/protocol/commands"
COMMAND = f"{{{NS_COMMANDS}}}command"
ACTIONS = ("execute", "next", "prev", "complete", "cancel")
NO_PERMISSION = "You don't have permission to execute this command"
MAX_SESSIONS_PER_USER = 10


@dataclass
class Options:
    adhoc_session_timeout: int = 600  # seconds a multi-stage command may wait for its user


@dataclass
class _Session:
    node: str
    owner: str  # full JID
    state: Any
    deadline: float


def bad_sessionid() -> etree._Element:
    return st.element(f"{{{NS_COMMANDS}}}bad-sessionid")


def command_element(node: str, status: str, sessionid: str | None = None) -> etree._Element:
    return st.element(COMMAND, {"node": node, "sessionid": sessionid, "status": status})


def load(module: Module) -> None:
    opts = module.options(Options)
    module.depends("disco")  # commands are found through service discovery
    module.add_feature(NS_COMMANDS)
    sessions: dict[str, _Session] = {}

    def commands() -> dict[str, Command]:
        return {c.node: c for c in module.items("adhoc")}

    def allowed(command: Command, requester: JID) -> bool:
        if command.permission == "any":
            return True
        if command.permission == "local_user":
            return requester.domain == module.host
        return module.is_admin(requester)

    @module.hook("host-disco-items-node")
    async def items(event: Any) -> bool | None:
        if event.node != NS_COMMANDS:
            return None
        requester = event.event.session.jid
        for node, command in sorted(commands().items()):
            if allowed(command, requester):
                st.sub(
                    event.query,
                    "{http://jabber.org/protocol/disco#items}item",
                    {"name": command.name, "node": node, "jid": module.host},
                )
        return True

    @module.hook("host-disco-info-node")
    async def info(event: Any) -> bool | None:
        ns = "{http://jabber.org/protocol/disco#info}"
        if event.node == NS_COMMANDS:
            st.sub(
                event.query,
                f"{ns}identity",
                {"name": "Ad-Hoc Commands", "category": "automation", "type": "command-list"},
            )
            return True
        command = commands().get(event.node)
        if command is None:
            return None
        if not allowed(command, event.event.session.jid):
            raise StanzaError("forbidden", "This item is not available to you", "auth")
        st.sub(
            event.query,
            f"{ns}identity",
            {"name": command.name, "category": "automation", "type": "command-node"},
        )
        st.sub(event.query, f"{ns}feature", {"var": NS_COMMANDS})
        st.sub(event.query, f"{ns}feature", {"var": dataforms.NS_DATA})
        return True

    @module.hook(f"iq-set/host/{NS_COMMANDS}:command")
    async def execute(event: StanzaEvent) -> bool | None:
        session, stanza = event.session, event.stanza
        element = stanza[0]
        command = commands().get(element.get("node", ""))
        if command is None:
            return None  # service-unavailable, as Prosody
        requester = session.jid
        if not allowed(command, requester):
            canceled = command_element(command.node, "canceled")
            st.sub(canceled, f"{{{NS_COMMANDS}}}note", {"type": "error"}, text=NO_PERMISSION)
            raise StanzaError("forbidden", NO_PERMISSION, "auth", extra=[canceled])
        action = element.get("action") or "execute"
        if action not in ACTIONS:
            raise StanzaError("bad-request", f"Unknown action {action!r}")
        now = time.monotonic()
        for sid in [s for s, held in sessions.items() if held.deadline < now]:
            del sessions[sid]
        sessionid = element.get("sessionid")
        state = None
        if sessionid is not None:
            held = sessions.get(sessionid)
            if held is None or held.owner != requester.full or held.node != command.node:
                raise StanzaError("bad-request", app=bad_sessionid())
            state = held.state
        elif action != "execute":
            raise StanzaError("bad-request", app=bad_sessionid())
        sessionid = sessionid or str(uuid.uuid4())
        if action == "cancel":
            sessions.pop(sessionid, None)
            reply = Reply("canceled")
        else:
            request = Request(
                requester, action, element.find(dataforms.X), state, module.is_admin(requester),
                module,
            )  # fmt: skip
            try:
                reply = await command.handler(request)
            except StanzaError:
                sessions.pop(sessionid, None)
                raise
        result = command_element(command.node, reply.status, sessionid)
        if reply.status == "executing":
            owned = [s for s in sessions.values() if s.owner == requester.full]
            if sessionid not in sessions and len(owned) >= MAX_SESSIONS_PER_USER:
                raise StanzaError("resource-constraint", "Too many commands in progress")
            sessions[sessionid] = _Session(
                command.node, requester.full, reply.state, now + opts.adhoc_session_timeout
            )
            actions = st.sub(result, f"{{{NS_COMMANDS}}}actions", {"execute": reply.default})
            for name in reply.actions:
                st.sub(actions, f"{{{NS_COMMANDS}}}{name}")
        else:
            sessions.pop(sessionid, None)
        for kind, text in reply.notes:
            st.sub(result, f"{{{NS_COMMANDS}}}note", {"type": kind}, text=text)
        if reply.form is not None:
            result.append(reply.form.element())
        answer = st.reply(stanza)
        answer.append(result)
        session.send(answer)
        return True

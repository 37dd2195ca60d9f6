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

Where Prosody is lax this follows XEP-0050 (§4.6): an unknown node is ``item-not-found``; an
unknown ``action`` is ``bad-request`` with
``<malformed-action/>``; one the stage did not offer in its ``<actions/>`` (``execute``, the
default, and ``cancel`` always go) is ``bad-request`` with ``<bad-action/>`` and the session
stays; a ``sessionid`` that has ended (completed, canceled, failed or timed out) is
``not-allowed`` with ``<session-expired/>``, and one that is unknown or another requester's is
``bad-request`` with ``<bad-sessionid/>`` (Prosody starts the command afresh). A session lasts
``adhoc_session_timeout`` seconds, or until its resource goes offline; each user (all
resources together) may hold a few at a time, and a new command beyond that is refused before it
runs.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from lxml import etree

from minixmpp.adhoc import Command, Reply, Request
from minixmpp.errors import StanzaError
from minixmpp.events import (
    CONFIG_RELOADED,
    HOST_DISCO_INFO_NODE,
    HOST_DISCO_ITEMS_NODE,
    RESOURCE_UNBIND,
    ConfigReloaded,
    DiscoNode,
    ResourceUnbind,
    StanzaEvent,
)
from minixmpp.jid import JID
from minixmpp.module import Module
from minixmpp.xml import dataforms
from minixmpp.xml import stanza as st

NS_COMMANDS = "http://jabber.org/protocol/commands"
COMMAND = f"{{{NS_COMMANDS}}}command"
ACTIONS = ("execute", "next", "prev", "complete", "cancel")
ALWAYS_ALLOWED = ("execute", "cancel")  # execute means the stage's default
NO_PERMISSION = "You don't have permission to execute this command"
MAX_SESSIONS_PER_USER = 10
ENDED_KEPT = 4096  # ended session ids remembered, to answer session-expired
ENDED_FOR = 3600  # seconds an ended session id is remembered


@dataclass
class Options:
    adhoc_session_timeout: int = 600  # seconds a multi-stage command may wait for its user


@dataclass
class _Session:
    node: str
    owner: JID  # the requester, a full JID
    state: Any
    deadline: float
    actions: tuple[str, ...] = ()  # what the last stage offered in <actions/>


@dataclass(frozen=True)
class _Ended:
    node: str
    owner: JID
    forget_at: float


def app_error(name: str) -> etree._Element:
    """An XEP-0050 specific condition (``bad-sessionid``, ``bad-action``, …)."""
    return st.element(f"{{{NS_COMMANDS}}}{name}")


def command_element(node: str, status: str, sessionid: str | None = None) -> etree._Element:
    return st.element(COMMAND, {"node": node, "sessionid": sessionid, "status": status})


def load(module: Module) -> None:
    opts = module.options(Options)
    module.depends("disco")  # commands are found through service discovery
    module.add_feature(NS_COMMANDS)

    @module.hook(CONFIG_RELOADED)
    async def reloaded(_event: ConfigReloaded) -> None:
        nonlocal opts
        opts = module.options(Options)

    sessions: dict[str, _Session] = {}
    ended: OrderedDict[str, _Ended] = OrderedDict()  # oldest first
    module.forget_on_reset(sessions, ended)

    def end(sessionid: str, now: float) -> None:
        held = sessions.pop(sessionid, None)
        if held is not None:
            ended[sessionid] = _Ended(held.node, held.owner, now + ENDED_FOR)
            while len(ended) > ENDED_KEPT:
                ended.popitem(last=False)

    def expire(now: float) -> None:
        for sid in [s for s, held in sessions.items() if held.deadline < now]:
            end(sid, now)
        while ended and next(iter(ended.values())).forget_at < now:
            ended.popitem(last=False)

    @module.hook(RESOURCE_UNBIND)
    async def resource_gone(event: ResourceUnbind) -> None:
        # A session belongs to one full JID: nobody can go on with it once that resource is
        # gone, so it must not count against the user's limit until it times out.
        owner, now = event.session.jid, module.clock.monotonic()
        for sid in [s for s, held in sessions.items() if held.owner == owner]:
            end(sid, now)

    def check_session(sessionid: str, node: str, requester: JID, now: float) -> _Session:
        held = sessions.get(sessionid)
        if held is not None and held.owner == requester and held.node == node:
            return held
        gone = ended.get(sessionid) if held is None else None
        if (
            gone is not None
            and (gone.owner, gone.node) == (requester, node)
            and gone.forget_at >= now
        ):
            raise StanzaError(
                "not-allowed", "The command session has ended", app=app_error("session-expired")
            )
        raise StanzaError("bad-request", app=app_error("bad-sessionid"))

    def commands() -> dict[str, Command]:
        return {c.node: c for c in module.items("adhoc")}

    def allowed(command: Command, requester: JID) -> bool:
        if command.permission == "any":
            return True
        if command.permission == "local_user":
            return requester.domain == module.host
        return module.is_admin(requester)

    @module.hook(HOST_DISCO_ITEMS_NODE)
    async def items(event: DiscoNode) -> bool | None:
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

    @module.hook(HOST_DISCO_INFO_NODE)
    async def info(event: DiscoNode) -> bool | None:
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
        node = element.get("node")
        if not node:
            raise StanzaError("bad-request", "A command needs a node")
        command = commands().get(node)
        if command is None:  # XEP-0050 §4.6 (Prosody answers service-unavailable)
            raise StanzaError("item-not-found", "No such command")
        requester = session.jid
        if not allowed(command, requester):
            canceled = command_element(command.node, "canceled")
            st.sub(canceled, f"{{{NS_COMMANDS}}}note", {"type": "error"}, text=NO_PERMISSION)
            raise StanzaError("forbidden", NO_PERMISSION, "auth", extra=[canceled])
        action = element.get("action") or "execute"
        form = element.find(dataforms.X)
        if form is not None and form.get("type") == "cancel":  # XEP-0004: submission withdrawn
            action = "cancel"
        if action not in ACTIONS:
            raise StanzaError(
                "bad-request", f"Unknown action {action!r}", app=app_error("malformed-action")
            )
        now = module.clock.monotonic()
        expire(now)
        sessionid = element.get("sessionid")
        if sessionid is None:
            if action != "execute":
                raise StanzaError("bad-request", app=app_error("bad-sessionid"))
            owned = sum(1 for s in sessions.values() if s.owner.bare == requester.bare)
            if owned >= MAX_SESSIONS_PER_USER:
                raise StanzaError("resource-constraint", "Too many commands in progress")
            sessionid = str(uuid.uuid4())
            # held from now on, so that requests running side by side count against the limit
            held = _Session(command.node, requester, None, now + opts.adhoc_session_timeout)
            sessions[sessionid] = held
        else:
            held = check_session(sessionid, command.node, requester, now)
            if action not in ALWAYS_ALLOWED and action not in held.actions:
                raise StanzaError(
                    "bad-request",
                    f"Action {action!r} is not allowed now",
                    app=app_error("bad-action"),
                )
        if action == "cancel":
            reply = Reply("canceled")
        else:
            admin = module.is_admin(requester)
            request = Request(requester, action, form, held.state, admin, module)
            try:
                reply = await command.handler(request)
            except BaseException:  # the error is the reply; the session is over
                end(sessionid, module.clock.monotonic())
                raise
        result = command_element(command.node, reply.status, sessionid)
        if reply.status == "executing":
            held.state, held.actions = reply.state, tuple(reply.actions)
            held.deadline = module.clock.monotonic() + opts.adhoc_session_timeout
            actions = st.sub(result, f"{{{NS_COMMANDS}}}actions", {"execute": reply.default})
            for name in reply.actions:
                st.sub(actions, f"{{{NS_COMMANDS}}}{name}")
        else:
            end(sessionid, module.clock.monotonic())
        for kind, text in reply.notes:
            st.sub(result, f"{{{NS_COMMANDS}}}note", {"type": kind}, text=text)
        if reply.other is not None:
            result.append(reply.other)
        elif reply.form is not None:
            result.append(reply.form.element())
        answer = st.reply(stanza)
        answer.append(result)
        session.send(answer)
        return True

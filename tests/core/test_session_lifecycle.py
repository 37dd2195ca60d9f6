"""What modules can do with a session's life: keep it bound when its connection drops
(connection-lost, for XEP-0198), take what it is sent (outbound filters), end it later."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from minixmpp.session import C2SSession
from minixmpp.testing import running_server
from tests.xmpp import login, wait_until

KEEPER = '''
    """Keeps a session whose connection dropped; what it is sent meanwhile is queued here."""
    from minixmpp.events import CONNECTION_LOST, RESOURCE_UNBIND
    from minixmpp.module import Module


    def load(module: Module):
        kept = {}
        unbound = []

        @module.hook(CONNECTION_LOST)
        async def keep(event):
            session = event.session
            queue = []

            def hold(stanza):
                if session.state == "hibernating":
                    queue.append(stanza)
                    return None  # taken
                return stanza

            session.filters.add(hold)
            kept[session.jid.full] = (session, queue)
            return True

        @module.hook(RESOURCE_UNBIND)
        async def gone(event):
            unbound.append((event.session.jid.full, event.error))

        return {"kept": kept, "unbound": unbound}
'''


async def test_a_module_keeps_a_dropped_session_bound_and_ends_it(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "mod_keeper.py").write_text(textwrap.dedent(KEEPER))
    async with running_server(
        tmp_path, modules=["ping", "keeper"], options={"plugin_paths": [str(plugins)]}
    ) as srv:
        for user in ("alice", "bob"):
            await srv.create_user(user, "pw")
        host = srv.server.hosts["localhost"]
        api = host.modules["keeper"].api
        alice, alice_jid = await login(srv.c2s_port, srv.ca_file, "alice", "pw", "phone")
        bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", "pw")
        alice.writer.transport.abort()  # the connection drops, no stream close
        await wait_until(lambda: alice_jid in api["kept"], "connection-lost")
        session, queue = api["kept"][alice_jid]
        assert session.state == "hibernating" and session.bound
        assert host.sessions.get(alice_jid) is session  # still reachable
        await bob.send(f"<message to='{alice_jid}' type='chat' id='held'><body>hi</body></message>")
        await bob.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")  # bob's message is handled
        assert [m.get("id") for m in queue] == ["held"]  # taken by the filter, not bounced
        assert api["unbound"] == []
        session.end("hibernation timed out")
        await session.unbound()
        assert api["unbound"] == [(alice_jid, "hibernation timed out")]
        assert host.sessions.get(alice_jid) is None


async def test_without_a_keeper_a_dropped_session_ends(tmp_path: Path) -> None:
    async with running_server(tmp_path) as srv:
        await srv.create_user("alice", "pw")
        host = srv.server.hosts["localhost"]
        alice, jid = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        alice.writer.transport.abort()
        await wait_until(lambda: host.sessions.get(jid) is None, "the session's end")


class FakeLink:
    """A connection as a session sees it, in memory."""

    kind = "test"

    def __init__(self) -> None:
        self.sent: list[etree._Element] = []
        self.session: C2SSession | None = None
        self.closed: list[tuple[object, ...]] = []

    def send_element(self, element: etree._Element) -> bool:
        self.sent.append(element)
        return True

    async def drain(self) -> None:
        pass

    def close(self, *args: object) -> None:
        self.closed.append(args)

    def request_restart(self) -> None:
        pass

    def adopt(self, session: C2SSession) -> None:
        self.session = session

    def send_features(self, features: etree._Element) -> bool:
        return True

    def authenticated(self) -> None:
        pass

    def ssl_object(self) -> None:
        return None

    def end_point_hash(self) -> None:
        return None

    async def start_tls(self, *_args: object) -> bool:
        return False


def test_the_session_state_table() -> None:
    first = FakeLink()
    session = C2SSession({}, first, ip="127.0.0.1", secure=True)
    with pytest.raises(RuntimeError):
        session.set_bound("r")  # not authenticated yet
    session.host = "localhost"
    session.authenticate("alice", 3)
    assert (session.state, session.jid.full, session.auth_epoch) == (
        "authenticated",
        "alice@localhost",
        3,
    )
    with pytest.raises(RuntimeError):
        session.authenticate("alice")  # once
    session.set_bound("r")
    assert session.bound and session.jid.full == "alice@localhost/r"
    session.link = None  # as connection_lost() does when a module keeps the session
    session._go("detach")
    assert session.send(etree.Element("message")) is False  # no connection: not sent
    second = FakeLink()
    session.attach(second)  # resumed on a new connection
    assert session.send(etree.Element("message")) and len(second.sent) == 1
    dropped: list[str] = []
    session.filters.add(lambda el: None if dropped.append(el.tag) is None else el, priority=5)
    assert session.send(etree.Element("presence"))  # taken by the filter
    assert dropped == ["presence"] and len(second.sent) == 1


def bound_session(link: FakeLink, resource: str = "r") -> C2SSession:
    session = C2SSession({}, link, ip="192.0.2.1", secure=True)
    link.session = session
    session.host = "localhost"
    session.authenticate("alice", 1)
    session.set_bound(resource)
    return session


def test_a_new_login_takes_over_a_hibernating_session() -> None:
    session = bound_session(FakeLink())
    session.data["kept"] = True
    session.link = None
    session._go("detach")
    link = FakeLink()
    newcomer = C2SSession({}, link, ip="198.51.100.7", secure=True)
    link.session = newcomer
    newcomer.host = "localhost"
    newcomer.authenticate("alice", 2)
    session.take_over(newcomer)
    assert (session.state, newcomer.state) == ("bound", "ended")
    assert link.session is session and session.link is link and newcomer.link is None
    assert (session.ip, session.auth_epoch, session.data) == ("198.51.100.7", 2, {"kept": True})
    assert session.jid.full == "alice@localhost/r"
    assert session.send(etree.Element("message")) and len(link.sent) == 1


def test_taking_over_a_connected_session_closes_its_connection() -> None:
    old = FakeLink()
    session = bound_session(old)
    link = FakeLink()
    newcomer = C2SSession({}, link, ip="198.51.100.7", secure=False)
    newcomer.host = "localhost"
    newcomer.authenticate("alice")
    session.take_over(newcomer)
    assert old.closed == [("conflict", "Replaced by new connection")]
    assert old.session is newcomer  # its close ends the newcomer, not the session
    assert session.state == "bound" and session.link is link and session.secure is False


@pytest.mark.parametrize("who", ["unauthenticated", "bob", "bound"])
def test_only_an_unbound_login_of_the_same_account_takes_over(who: str) -> None:
    session = bound_session(FakeLink())
    newcomer = C2SSession({}, FakeLink(), ip="", secure=True)
    newcomer.host = "localhost"
    if who != "unauthenticated":
        newcomer.authenticate("alice" if who == "bound" else "bob")
    if who == "bound":
        newcomer.set_bound("other")
    with pytest.raises(RuntimeError):
        session.take_over(newcomer)
    assert session.state == "bound"


def test_inbound_filters_run_in_priority_order_and_may_take() -> None:
    from minixmpp.session import Filters

    seen: list[str] = []
    filters = Filters()
    filters.add_incoming(lambda el: seen.append("low") or el, priority=-1)
    filters.add_incoming(lambda el: seen.append("high") or el, priority=5)
    element: etree._Element | None = etree.Element("message")
    for fn in filters.incoming:
        assert element is not None
        element = fn(element)
    assert seen == ["high", "low"] and element is not None
    taker = filters.incoming[0]
    filters.remove_incoming(taker)
    assert len(filters.incoming) == 1


READ_TIMEOUT = '''
    """Answers c2s-read-timeout as the test says: True, False or None."""
    from minixmpp.events import C2S_READ_TIMEOUT, CONNECTION_LOST
    from minixmpp.module import Module


    def load(module: Module):
        state = {"verdict": None, "asked": 0, "lost": []}

        @module.hook(C2S_READ_TIMEOUT)
        async def timeout(event):
            state["asked"] += 1
            return state["verdict"]

        @module.hook(CONNECTION_LOST)
        async def lost(event):
            state["lost"].append(event.session.jid.full)

        return state
'''


@pytest.mark.parametrize("verdict", [True, False, None])
async def test_modules_decide_what_the_idle_timeout_does(tmp_path: Path, verdict: Any) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "mod_idle.py").write_text(textwrap.dedent(READ_TIMEOUT))
    options = {"plugin_paths": [str(plugins)], "c2s_idle_timeout": 60}
    async with running_server(tmp_path, modules=["ping", "idle"], options=options) as srv:
        await srv.create_user("alice", "pw")
        state = srv.server.hosts["localhost"].modules["idle"].api
        state["verdict"] = verdict
        srv.clock.freeze()
        client, jid = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        srv.clock.advance(61)
        if verdict is None:
            assert await client.stream_error() == ("connection-timeout", "Idle for too long")
        elif verdict is False:  # dropped without a word: as a lost connection
            await client.closed()
            assert not client.stream_closed
            await wait_until(lambda: state["lost"] == [jid], "connection-lost")
        else:
            await wait_until(lambda: state["asked"] == 1, "the question")
            srv.clock.advance(30)  # the period starts again: not asked yet
            assert (await client.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")).get(
                "type"
            ) == "result"
            assert state["asked"] == 1


TAKER = '''
    """Takes the client's messages with id 'secret' before the router sees them."""
    from minixmpp.events import RESOURCE_BIND
    from minixmpp.module import Module


    def load(module: Module):
        taken = []

        def take(element):
            if element.get("id") == "secret":
                taken.append(element.get("id"))
                return None
            return element

        @module.hook(RESOURCE_BIND)
        async def bound(event):
            event.session.filters.add_incoming(take)

        return taken
'''


async def test_an_inbound_filter_takes_what_the_router_must_not_see(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "mod_taker.py").write_text(textwrap.dedent(TAKER))
    options = {"plugin_paths": [str(plugins)]}
    async with running_server(tmp_path, modules=["ping", "taker"], options=options) as srv:
        await srv.create_user("alice", "pw")
        taken = srv.server.hosts["localhost"].modules["taker"].api
        client, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        # to nobody: the router would answer service-unavailable
        await client.send("<message to='nobody@localhost/x' type='normal' id='secret'/>")
        await client.send("<message to='nobody@localhost/x' type='normal' id='seen'/>")
        error = await client.expect("message")
        assert (error.get("id"), error.get("type")) == ("seen", "error")
        assert taken == ["secret"]

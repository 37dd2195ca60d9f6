"""A virtual host: its event bus, items, loaded modules, bound sessions and accounts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from lxml import etree

from minixmpp.accounts import Accounts, Users
from minixmpp.config import GlobalOptions, HostConfig
from minixmpp.events import USER_DELETED, USER_PASSWORD_CHANGED, EventBus, UserEvent
from minixmpp.jid import JID
from minixmpp.roster import Rosters
from minixmpp.session import Filters, Session
from minixmpp.storage import Storage

if TYPE_CHECKING:
    import ssl

    from minixmpp.module import Module
    from minixmpp.router import Router
    from minixmpp.server import Server


class SessionRegistry:
    """Bound c2s sessions of one host, by full JID and by user."""

    def __init__(self) -> None:
        self._full: dict[str, Session] = {}
        self._by_user: dict[str, dict[str, Session]] = {}

    def add(self, session: Session) -> Session | None:
        """Register a freshly bound session; return the session it replaces, if any."""
        jid = session.jid
        assert jid.node is not None and jid.resource is not None
        old = self._full.get(jid.full)
        self._full[jid.full] = session
        self._by_user.setdefault(jid.node, {})[jid.resource] = session
        return old

    def remove(self, session: Session) -> bool:
        jid = session.jid
        if self._full.get(jid.full) is not session:
            return False
        del self._full[jid.full]
        assert jid.node is not None and jid.resource is not None
        resources = self._by_user[jid.node]
        del resources[jid.resource]
        if not resources:
            del self._by_user[jid.node]
        return True

    def get(self, full_jid: str) -> Session | None:
        return self._full.get(full_jid)

    def of_user(self, username: str) -> list[Session]:
        resources = self._by_user.get(username)
        return list(resources.values()) if resources else []

    def count_of(self, username: str) -> int:
        return len(self._by_user.get(username, ()))

    def all(self) -> Iterator[Session]:
        return iter(list(self._full.values()))

    def __len__(self) -> int:
        return len(self._full)


class HostOrigin:
    """The host itself as the origin of stanzas (Prosody's host session): a ``Session`` that
    is always bound and sends what it is given through the router."""

    c2s = False
    state = "bound"
    authenticated = True
    bound = True
    transport = "none"
    tls_version = None
    id = 0
    ip = ""
    secure = True
    lang = "en"
    presence: etree._Element | None = None
    priority = 0
    auth_epoch = 0

    def __init__(self, host: Host) -> None:
        self.host = host.name
        self.jid = JID(None, host.name)
        self.username: str | None = None
        self.resource: str | None = None
        self.data: dict[str, Any] = {}
        self.filters = Filters()
        self._host = host

    def send(self, stanza: etree._Element) -> bool:
        self._host.keep(asyncio.ensure_future(self._host.route_from_host(stanza)))
        return True

    def close(
        self, condition: str | None = None, text: str | None = None, app: str | None = None
    ) -> None:
        pass  # a host has no stream

    def channel_bindings(self) -> dict[str, bytes]:
        return {}

    def authenticate(self, username: str, epoch: int = 0) -> None:
        raise RuntimeError("a host does not authenticate")

    def restart_stream(self) -> None:
        raise RuntimeError("a host has no stream")

    async def stream_features(self) -> etree._Element:
        raise RuntimeError("a host has no stream")

    def send_features(self, features: etree._Element) -> bool:
        raise RuntimeError("a host has no stream")

    def set_bound(self, resource: str) -> None:
        raise RuntimeError("a host does not bind")

    async def start_tls(self, context: ssl.SSLContext, proceed: etree._Element) -> bool:
        return False

    async def unbound(self) -> None:
        pass

    async def drain(self) -> None:
        pass


class Host:
    def __init__(
        self,
        config: HostConfig,
        *,
        server: Server,
        storage: Storage,
        accounts: Accounts,
        router: Router,
        tasks: set[asyncio.Future[Any]],
        secret: bytes = b"",
        rosters: Rosters | None = None,
    ) -> None:
        self.name = config.name
        self.config = config
        self.server = server
        self.server_options: GlobalOptions = server.options
        self.storage = storage
        self.events = EventBus()
        self.items: dict[str, list[Any]] = {}
        self.modules: dict[str, Module] = {}
        self.sessions = SessionRegistry()
        self.users = Users(accounts, self.name, self.events)
        self.rosters = rosters if rosters is not None else Rosters(storage)
        self.admins: frozenset[str] = frozenset()
        self.reconfigure(config, server.options)
        self.origin = HostOrigin(self)
        self.secret = secret
        self._router = router
        self._tasks = tasks
        # Last in line, after modules have cleaned up: an account that is gone has no sessions.
        self.events.hook(USER_DELETED, self._close_sessions_of_deleted_user, priority=-1000)
        self.events.hook(USER_PASSWORD_CHANGED, self._close_other_sessions, priority=-1000)

    def reconfigure(self, config: HostConfig, server_options: GlobalOptions) -> None:
        """The options in force from now on (at start, and after a reload: see reload.py)."""
        self.config = config
        self.server_options = server_options
        # config.py refuses anything but bare user@host JIDs: this only prepares them
        self.admins = frozenset(JID.parse(a).bare for a in config.options.admins)

    async def _close_sessions_of_deleted_user(self, event: UserEvent) -> None:
        for session in self.sessions.of_user(event.username):
            session.close("not-authorized", "Account deleted")

    async def _close_other_sessions(self, event: UserEvent) -> None:
        """A new password: every session but the one that changed it must log in again."""
        if not event.extra.get("close_sessions", True):
            return
        for session in self.sessions.of_user(event.username):
            if session is not event.session:
                session.close("reset", "Password changed")

    async def route_from_host(self, stanza: etree._Element) -> None:
        await self._router.process(self.origin, stanza)

    def keep(self, task: asyncio.Future[Any]) -> None:
        """Hold a reference to a background task until it finishes."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

"""Failed authentication throttled per address, across connections (prosody-modules'
mod_limit_auth, its options and its reply).

Each address has a token bucket of ``limit_auth_max`` failed SASL attempts, one coming back
every ``limit_auth_period / limit_auth_max`` seconds (Prosody's util.throttle). Once it is empty,
an ``<auth/>`` (or a SASL2 ``<authenticate/>``, FAST's included) from that address, on any
connection, is answered ``<failure><temporary-auth-failure/></failure>`` (in SASL2's namespace for
SASL2) without the credentials being looked at (after ``limit_auth_tarpit_delay`` seconds of the
server's clock, if set).

Prosody's module looks at the bucket when an attempt starts and takes from it when one fails, so
attempts started at once on many connections all get through on one token (measured here: 12
checked passwords in 10 s from 4 connections, for 6.7 allowed). So once an address has failed
at all (its bucket is not full), an attempt takes its token as it starts, and a success gives it
back; with a full bucket, logins from one address (users behind one NAT) are not metered.

IPv6 addresses count per /64; addresses in ``unlimited_ips`` (loopback by default: test suites
try wrong passwords on purpose) are not throttled. A connection refused
``c2s_max_auth_failures`` times is closed with ``policy-violation``, as after as many failures.

Loaded on every host, like mod_saslauth, unless listed in ``modules_disabled``. Its API
meters other secrets a client may guess: mod_invites_register's invite tokens draw on the same
attempts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

import msgspec

from minixmpp.admission import AddressSet, address_key
from minixmpp.clock import Clock
from minixmpp.events import (
    AUTHENTICATION_FAILURE,
    AUTHENTICATION_SUCCESS,
    SERVER_RESETTING,
    ServerEvent,
    SessionEvent,
    StanzaEvent,
)
from minixmpp.module import Module
from minixmpp.session import Session
from minixmpp.throttle import Throttles
from minixmpp.xml import stanza as st

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL2 = "urn:xmpp:sasl:2"
REFUSED = "limit_auth.refused"  # session.data: attempts refused on this connection
TAKEN = "limit_auth.taken"  # session.data: the address whose token this attempt holds
ADDRESSES = 10_000  # buckets kept, the most recently used (a forgotten one is full again)


@dataclass
class Options:
    limit_auth_period: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    limit_auth_max: Annotated[int, msgspec.Meta(ge=1)] = 5
    limit_auth_tarpit_delay: Annotated[float, msgspec.Meta(ge=0)] | None = None


class LimitAuthApi:
    """The throttle, for other secrets a client may guess (mod_invites_register's invite
    tokens share an address's attempts): ``start`` an attempt (False: refuse it), then say
    how it ended. Its buckets run on the server's clock."""

    def __init__(
        self, opts: Options, unlimited: AddressSet, log: logging.Logger, clock: Clock
    ) -> None:
        self._throttles = Throttles(
            opts.limit_auth_max, opts.limit_auth_period, ADDRESSES, clock.monotonic
        )
        self._unlimited = unlimited
        self._log = log
        self._told: set[str] = set()  # addresses logged as throttled, until they may try again

    def forget(self) -> None:
        """Every address has all its attempts again (the test harness's reset)."""
        self._throttles.clear()
        self._told.clear()

    def start(self, session: Session) -> bool:
        """An attempt begins: False when its address is out of attempts."""
        if session.ip in self._unlimited:
            return True
        key = address_key(session.ip)
        throttle = self._throttles.get(key)
        if throttle.update() >= throttle.max:  # no failures to speak of
            self._told.discard(key)
            return True
        if throttle.poll():
            session.data[TAKEN] = key  # given back if it succeeds
            self._told.discard(key)
            return True
        if key not in self._told:
            if len(self._told) >= ADDRESSES:
                self._told.clear()
            self._told.add(key)
            self._log.info("too many failed authentication attempts from %s: refusing", key)
        return False

    def failed(self, session: Session) -> None:
        if session.data.pop(TAKEN, None) is None and session.ip not in self._unlimited:
            self._throttles.get(address_key(session.ip)).poll()

    def succeeded(self, session: Session) -> None:
        key = session.data.pop(TAKEN, None)
        if key is not None:
            throttle = self._throttles.get(key)
            throttle.balance = min(throttle.max, throttle.balance + 1)


def load(module: Module) -> LimitAuthApi:
    opts = module.options(Options)
    max_refusals = module.server_options.c2s_max_auth_failures
    unlimited = AddressSet(module.server_options.unlimited_ips)
    api = LimitAuthApi(opts, unlimited, module.log, module.clock)

    @module.hook(SERVER_RESETTING)
    async def resetting(_event: ServerEvent) -> None:
        api.forget()

    async def gate(event: StanzaEvent, failure_ns: str) -> bool | None:
        session = event.session
        if session.authenticated or api.start(session):
            return None
        refused = session.data.get(REFUSED, 0) + 1
        session.data[REFUSED] = refused
        if opts.limit_auth_tarpit_delay:
            await module.clock.sleep(opts.limit_auth_tarpit_delay)
        failure = st.element(f"{{{failure_ns}}}failure")
        st.sub(failure, f"{{{NS_SASL}}}temporary-auth-failure")
        session.send(failure)
        if refused >= max_refusals:
            session.close("policy-violation", "Too many failed authentication attempts")
        return True

    @module.hook(f"stanza/{NS_SASL}:auth", priority=10)  # ahead of mod_saslauth
    async def auth(event: StanzaEvent) -> bool | None:
        return await gate(event, NS_SASL)

    @module.hook(f"stanza/{NS_SASL2}:authenticate", priority=10)  # ahead of mod_sasl2
    async def authenticate(event: StanzaEvent) -> bool | None:
        return await gate(event, NS_SASL2)

    @module.hook(AUTHENTICATION_FAILURE)
    async def failed(event: SessionEvent) -> None:
        api.failed(event.session)

    @module.hook(AUTHENTICATION_SUCCESS)
    async def succeeded(event: SessionEvent) -> None:
        api.succeeded(event.session)

    return api

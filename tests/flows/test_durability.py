"""kill -9 during invite registrations: what the server acknowledged survives, no invite is
spent twice or spent without its account, and the database stays consistent.

The server runs as a real process (``python -m minixmpp serve``) on one data folder. Each round
starts it, sends a wave of concurrent registrations (XEP-0401 preauth, then XEP-0077), several
streams racing for each single-use invite and all for one reusable invite, and kills it with
SIGKILL once a few registrations have been acknowledged, while others are in flight. The next
round restarts it on the same data. At the end the data is opened again and checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import ssl
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from minixmpp.testing import running_server
from tests.xmpp import NS_SASL, TIMEOUT, Closed, RawClient, login

MODULES = ["register", "invites", "invites_register"]
KILL_AFTER = [2, 4, 6, 1, 3]  # per round: acknowledged registrations before the kill
ROUNDS = len(KILL_AFTER)
TOKENS_PER_ROUND = 6  # single-use invites, each raced for by RACERS streams
RACERS = 3
REUSABLE_PER_ROUND = 5  # streams per round that use the one reusable invite
MAX_USES = 12  # fewer than the streams that try it over all rounds
CONFIG = """
interfaces = ["127.0.0.1"]
c2s_ports = [0]
c2s_direct_tls_ports = [0]
default_iteration_count = 4096
modules_enabled = {modules}
log = {{ info = "*console" }}
[VirtualHost."localhost"]
"""


@dataclass
class Attempt:
    username: str
    token: str
    outcome: str = "unknown"  # registered | refused | unknown (the server died first)


async def register(port: int, ca_file: Path, attempt: Attempt, acked: asyncio.Queue[str]) -> None:
    """One stream: STARTTLS, preauth with the token, register. Records what the server said."""
    client: RawClient | None = None
    try:
        client = await RawClient.connect(port)
        await client.open()
        await client.starttls(ca_file)
        await client.send(
            f"<iq type='set' id='p'><preauth xmlns='urn:xmpp:pars:0' token='{attempt.token}'/></iq>"
        )
        if (await client.next()).get("type") != "result":
            attempt.outcome = "refused"
            return
        await client.send(
            "<iq type='set' id='r'><query xmlns='jabber:iq:register'>"
            f"<username>{attempt.username}</username><password>pw-{attempt.username}</password>"
            "</query></iq>"
        )
        reply = await client.next()
        assert reply.get("id") == "r", etree.tostring(reply)
        attempt.outcome = "registered" if reply.get("type") == "result" else "refused"
        if attempt.outcome == "registered":
            acked.put_nowait(attempt.username)
    except (Closed, ConnectionError, ssl.SSLError, TimeoutError, OSError):
        pass  # killed mid-way: no answer, so no promise either way
    except AssertionError as exc:
        # killed while open() or starttls() waited for the features: expect() says so as an
        # AssertionError around Closed (seen once in a loaded run); the same as above
        if not isinstance(exc.__cause__, Closed | ConnectionError | TimeoutError | OSError):
            raise
    finally:
        if client is not None:
            await client.close()


class Server:
    """``minixmpp serve`` as a process of its own; its log is read all along (a full pipe
    would stall it)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.log: list[str] = []
        self.port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, config: Path) -> Server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "minixmpp", "serve", "-c", str(config),
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        server = cls(proc)
        try:
            await asyncio.wait_for(asyncio.shield(server.port), 30)
        except BaseException:
            await server.kill()
            raise
        return server

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while line := (await self.proc.stderr.readline()).decode():
            self.log.append(line)
            if (match := re.search(r"c2s ports \[(\d+)\]", line)) and not self.port.done():
                self.port.set_result(int(match.group(1)))
        if not self.port.done():
            self.port.set_exception(AssertionError("the server exited:\n" + "".join(self.log)))

    async def kill(self) -> None:
        """SIGKILL to this process (if it still runs), and wait for it."""
        if self.proc.returncode is None:
            self.proc.kill()
        await asyncio.wait_for(self.proc.wait(), 10)
        await asyncio.wait_for(self.reader, 10)


async def test_kill_9_during_invite_registrations(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text(textwrap.dedent(CONFIG.format(modules=str(MODULES).replace("'", '"'))))
    async with running_server(tmp_path, modules=MODULES) as setup:  # the same data folder
        api = setup.invites()
        single = [
            [(await api.create_account()).token for _ in range(TOKENS_PER_ROUND)]
            for _ in range(ROUNDS)
        ]
        reusable = (await api.create_account(reusable=True, max_uses=MAX_USES)).token
        ca_file = setup.ca_file

    attempts: list[Attempt] = []
    for round_ in range(ROUNDS):
        wave = [
            Attempt(f"r{round_}t{t}c{c}", token)
            for t, token in enumerate(single[round_])
            for c in range(RACERS)
        ] + [Attempt(f"r{round_}u{c}", reusable) for c in range(REUSABLE_PER_ROUND)]
        attempts += wave
        server = await Server.start(config)
        port = server.port.result()
        acked: asyncio.Queue[str] = asyncio.Queue()
        try:
            tasks = [asyncio.create_task(register(port, ca_file, a, acked)) for a in wave]
            async with asyncio.timeout(TIMEOUT):
                for _ in range(KILL_AFTER[round_]):
                    await acked.get()
            await server.kill()  # while the other registrations are in flight
            await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
        finally:
            await server.kill()
        assert server.proc.returncode == -9
        assert [a.outcome for a in wave].count("registered") >= KILL_AFTER[round_]
    outcomes = [a.outcome for a in attempts]
    assert "unknown" in outcomes, "every registration had finished before the kills"

    with sqlite3.connect(tmp_path / "data" / "minixmpp.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    async with running_server(tmp_path, modules=MODULES) as server:
        users = server.server.hosts["localhost"].users
        api = server.invites()
        exists = {a.username: await users.exists(a.username) for a in attempts}
        for a in attempts:
            if a.outcome == "registered":  # acknowledged: it must have survived the kills
                assert exists[a.username], a
            elif a.outcome == "refused":
                assert not exists[a.username], a
        for token in [t for round_tokens in single for t in round_tokens]:
            made = [a.username for a in attempts if a.token == token and exists[a.username]]
            left = await api.find(token)
            # one invite, one account, in one transaction: spent iff its account exists
            assert len(made) == (0 if left is not None else 1), (token, made)
        made = [a.username for a in attempts if a.token == reusable and exists[a.username]]
        invite = await api.find(reusable)
        uses = invite.uses if invite is not None else MAX_USES  # used up: no longer found
        assert len(made) == uses <= MAX_USES
        for username in [u for u, ok in exists.items() if ok]:  # the keys were stored whole
            client, _ = await login(server.c2s_port, server.ca_file, username, f"pw-{username}")
            await client.close()
        wrong = await RawClient.connect(server.c2s_port)
        await wrong.open()
        await wrong.starttls(server.ca_file)
        assert (await wrong.scram(attempts[0].username, "nope")).tag == f"{{{NS_SASL}}}failure"
        with contextlib.suppress(Exception):
            await wrong.close()

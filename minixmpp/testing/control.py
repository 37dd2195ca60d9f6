"""The control API of ``minixmpp testserver``: JSON over HTTP on loopback, for test suites in
any language. Every request but ``GET /health`` carries ``Authorization: Bearer TOKEN`` (the
token ``testserver`` printed); errors are ``{"error": text}`` with 400 (a bad request), 401,
404, 408 (a wait that timed out) or 409 (an assertion that failed, a name taken).

    GET    /health                      {"status": "ok"}
    GET    /server                      addresses, CA file, hosts (what testserver printed)
    GET    /users                       [jid…]           POST /users {username?, password?, host?}
    DELETE /users/JID                                    POST /rosters {owner, contact,
    GET    /rosters/JID                 {contact: item}        subscription?, name?, groups?}
    GET    /invites                     [invite…]        POST /invites {kind?, token?, username?,
                                                               inviter?, roles?, groups?, ttl?,
                                                               max_uses?}
    POST   /reset                       back to the start state
    POST   /snapshots                   {"id": …}        POST /snapshots/ID/restore
    GET    /clock                       {time, monotonic, frozen}
    POST   /clock                       {"freeze": true} {"unfreeze": true} {"advance": s}
                                        {"set_time": unix} {"reset": true}
    GET    /traffic?jid=&direction=in|out&tag=&since=   records   GET /traffic/transcript
    GET    /mark                        {"records": n, "events": m}: a ``since`` for later
    POST   /wait {"event": name} or {"tag", "jid"?, "attrs"?}, "timeout"?, "since"?
    POST   /assert-nothing-sent {"jid", "tag"?, "within"?, "since"?}      204, or 409
    POST   /faults/close-streams {jid, condition?, text?}   /faults/see-other-host {jid, address}
    POST   /faults/drop-reply {id, jid?}   /faults/delay-reply {id, seconds, jid?}
    POST   /faults/fail-next-write {count?}   POST /restart {kill?}   POST /stop
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import secrets
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from minixmpp.testing.server import Snapshot, XmppServer
from minixmpp.testing.traffic import Mark, Record, belongs, match

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Problem(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def _json(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=_dumps)


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, default=_plain)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "__dict__"):
        return {k: v for k, v in vars(value).items() if not k.startswith("_")}
    return str(value)


def _record(r: Record) -> dict[str, Any]:
    return {
        "seq": r.seq, "stream": r.stream, "jid": r.jid,
        "direction": "in" if r.incoming else "out", "data": r.text,
    }  # fmt: skip


def _matcher(tag: str | None, jid: str | None, attrs: dict[str, str]) -> Callable[[Record], bool]:
    """Elements named ``tag`` with ``attrs``, of ``jid``'s streams (bare: any resource)."""
    element = match(tag, **attrs)

    def matches(record: Record) -> bool:
        if jid is not None and not belongs(record, jid):
            return False
        return element(record)

    return matches


def _since(value: Any) -> Mark | None:
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return Mark(int(value.get("records", 0)), int(value.get("events", 0)))
    return Mark(int(value), 0)


class ControlApi:
    def __init__(self, server: XmppServer, info: Callable[[], dict[str, Any]]) -> None:
        self.server = server
        self.info = info
        self.token = secrets.token_urlsafe(24)
        self.stopped = asyncio.Event()
        self._snapshots: dict[str, Snapshot] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, port: int = 0) -> None:
        app = web.Application(middlewares=[self._guard], client_max_size=1 << 20)
        s = self.server
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/health", self.health), ("GET", "/server", self.describe),
            ("GET", "/users", self.users), ("POST", "/users", self.create_user),
            ("DELETE", "/users/{jid}", self.delete_user),
            ("GET", "/rosters/{jid}", self.roster), ("POST", "/rosters", self.add_contact),
            ("GET", "/invites", self.invites), ("POST", "/invites", self.create_invite),
            ("POST", "/reset", self.done(s.reset)), ("POST", "/snapshots", self.snapshot),
            ("POST", "/snapshots/{id}/restore", self.restore),
            ("GET", "/clock", self.clock), ("POST", "/clock", self.move_clock),
            ("GET", "/traffic", self.traffic), ("GET", "/traffic/transcript", self.transcript),
            ("GET", "/mark", self.mark), ("POST", "/wait", self.wait),
            ("POST", "/assert-nothing-sent", self.nothing_sent),
            ("POST", "/faults/{name}", self.fault), ("POST", "/restart", self.restart),
            ("POST", "/stop", self.stop),
        ]  # fmt: skip
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != "/health":
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return _json({"error": "a bearer token is needed"}, 401)
        try:
            return await handler(request)
        except Problem as exc:
            return _json({"error": str(exc)}, exc.status)
        except (ValueError, KeyError, TypeError) as exc:
            return _json({"error": f"bad request: {exc}"}, 400)
        except sqlite3.Error as exc:  # fail-next-write, or a real one
            return _json({"error": f"storage: {exc}"}, 500)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            body = await request.json()
        except ValueError:
            raise Problem(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise Problem(400, "the body is a JSON object")
        return body

    def done(self, action: Callable[[], Awaitable[None]]) -> Handler:
        async def handler(_request: web.Request) -> web.StreamResponse:
            await action()
            return web.Response(status=204)

        return handler

    # -- handlers -------------------------------------------------------------------------

    async def health(self, _request: web.Request) -> web.StreamResponse:
        return _json({"status": "ok"})

    async def describe(self, _request: web.Request) -> web.StreamResponse:
        return _json(self.info())

    async def users(self, _request: web.Request) -> web.StreamResponse:
        s = self.server
        names = [f"{u}@{h}" for h in s.hosts for u in await s.server.hosts[h].users.list()]
        return _json(names)

    async def create_user(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        try:
            if body.get("username"):
                account = await self.server.create_user(
                    str(body["username"]), body.get("password"), body.get("host")
                )
            else:
                account = await self.server.new_user(host=body.get("host"))
        except ValueError as exc:
            raise Problem(409, str(exc)) from None
        return _json({"jid": account.jid, "password": account.password}, 201)

    async def delete_user(self, request: web.Request) -> web.StreamResponse:
        if not await self.server.delete_user(request.match_info["jid"]):
            raise Problem(404, "no such account")
        return web.Response(status=204)

    async def roster(self, request: web.Request) -> web.StreamResponse:
        items = await self.server.roster(request.match_info["jid"])
        return _json({jid: dataclasses.asdict(item) for jid, item in items.items()})

    async def add_contact(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        await self.server.add_contact(
            body["owner"], body["contact"], body.get("subscription", "both"),
            name=body.get("name"), groups=body.get("groups", ()),
        )  # fmt: skip
        return web.Response(status=204)

    async def invites(self, _request: web.Request) -> web.StreamResponse:
        return _json([_plain(i) for i in await self.server.invites().list()])

    async def create_invite(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        known = {"kind", "token", "username", "inviter", "roles", "groups", "ttl", "max_uses"}
        if set(body) - known:
            raise Problem(400, f"unknown fields: {sorted(set(body) - known)}")
        try:
            invite = await self.server.create_invite(**body)
        except ValueError as exc:
            raise Problem(409 if "exists" in str(exc) else 400, str(exc)) from None
        return _json(_plain(invite), 201)

    async def snapshot(self, _request: web.Request) -> web.StreamResponse:
        key = secrets.token_hex(4)
        self._snapshots[key] = await self.server.snapshot()
        return _json({"id": key}, 201)

    async def restore(self, request: web.Request) -> web.StreamResponse:
        saved = self._snapshots.get(request.match_info["id"])
        if saved is None:
            raise Problem(404, "no such snapshot")
        await self.server.restore(saved)
        return web.Response(status=204)

    async def clock(self, _request: web.Request) -> web.StreamResponse:
        c = self.server.clock
        return _json({"time": c.time(), "monotonic": c.monotonic(), "frozen": c.frozen})

    async def move_clock(self, request: web.Request) -> web.StreamResponse:
        body, c = await self._body(request), self.server.clock
        if body.get("reset"):
            c.reset()
        if body.get("freeze"):
            c.freeze()
        if "set_time" in body:
            c.set_time(float(body["set_time"]))
        if "advance" in body:
            c.advance(float(body["advance"]))
        if body.get("unfreeze"):
            c.unfreeze()
        return await self.clock(request)

    async def traffic(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        since = _since(q.get("since"))
        tag, jid, direction = q.get("tag") or None, q.get("jid"), q.get("direction")
        log = self.server.traffic
        if jid and direction == "in":
            records = log.sent_by(jid, tag, since=since)
        elif jid and direction == "out":
            records = log.received_by(jid, tag, since=since)
        else:
            records = [
                r
                for r in log.find(tag, since=since)
                if (not jid or belongs(r, jid))
                and (direction is None or (direction == "in") == r.incoming)
            ]
        return _json([_record(r) for r in records])

    async def transcript(self, request: web.Request) -> web.StreamResponse:
        text = self.server.traffic.transcript(request.query.get("jid") or None)
        return web.Response(text=text, content_type="text/plain")

    async def mark(self, _request: web.Request) -> web.StreamResponse:
        return _json(dataclasses.asdict(self.server.traffic.mark()))

    async def wait(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        timeout = min(float(body.get("timeout", 5.0)), 300.0)
        since = _since(body.get("since"))
        if "event" in body:
            what: Any = str(body["event"])
        else:
            what = _matcher(body.get("tag"), body.get("jid"), body.get("attrs", {}))
        try:
            found = await self.server.wait_for(what, timeout, since=since)
        except AssertionError as exc:
            raise Problem(408, str(exc)) from None
        return _json(_record(found) if isinstance(found, Record) else _plain(found))

    async def nothing_sent(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        try:
            await self.server.assert_nothing_sent_to(
                body["jid"], body.get("tag"), within=min(float(body.get("within", 5.0)), 300.0),
                since=_since(body.get("since")),
            )  # fmt: skip
        except AssertionError as exc:
            raise Problem(409, str(exc)) from None
        return web.Response(status=204)

    async def fault(self, request: web.Request) -> web.StreamResponse:
        body, faults = await self._body(request), self.server.faults
        name = request.match_info["name"]
        if name == "close-streams":
            count = faults.close_streams(
                body["jid"], body.get("condition", "reset"), body.get("text")
            )
            return _json({"closed": count})
        if name == "see-other-host":
            return _json({"closed": faults.see_other_host(body["jid"], body["address"])})
        if name == "drop-reply":
            faults.drop_reply(str(body["id"]), jid=body.get("jid"))
        elif name == "delay-reply":
            faults.delay_reply(str(body["id"]), float(body["seconds"]), jid=body.get("jid"))
        elif name == "fail-next-write":
            faults.fail_next_write(int(body.get("count", 1)))
        else:
            raise Problem(404, f"no fault {name!r}")
        return web.Response(status=204)

    async def restart(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        await self.server.restart(kill=bool(body.get("kill")))
        return web.Response(status=204)

    async def stop(self, _request: web.Request) -> web.StreamResponse:
        self.stopped.set()
        return web.Response(status=204)

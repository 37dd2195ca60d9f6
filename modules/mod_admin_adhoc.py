"""Service administration (XEP-0133) by ad-hoc command, admins only, as Prosody's
mod_admin_adhoc: add, delete and end the sessions of users, change a password, a user's roster
and statistics, the online users; plus XEP-0133's counts and list of registered users, which
Prosody lacks. Enough for a test suite to provision accounts (XMPP Interop Testing does).

Each is a form, then a completed reply with a note or a result form, in Prosody's words.
"""

from __future__ import annotations

from lxml import etree

from minixmpp.accounts import BadPassword
from minixmpp.adhoc import Command, Reply, Request, simple
from minixmpp.jid import JID
from minixmpp.module import Module
from minixmpp.roster import NS_ROSTER
from minixmpp.xml import stanza as st
from minixmpp.xml.dataforms import Field, Form, hidden

NS_ADMIN = "http://jabber.org/protocol/admin"
FORM_TYPE = hidden("FORM_TYPE", NS_ADMIN)


def load(module: Module) -> None:
    module.depends("adhoc")
    users = module.users
    host = module.host

    def local(jid: str) -> tuple[str | None, str]:
        parsed = JID.parse(jid)  # already checked by read_form
        return parsed.node, parsed.domain

    def error(text: str) -> Reply:
        return Reply(notes=[("error", text)])

    def elsewhere(what: str, domain: str) -> Reply:
        return error(f"Tried to {what} a user on {domain} but command was sent to {host}")

    add_form = Form(
        "form", "Adding a User", "Fill out this form to add a user.",
        [
            FORM_TYPE,
            Field("accountjid", "jid-single", "The Jabber ID for the account to be added",
                  required=True),
            Field("password", "text-private", "The password for this account"),
            Field("password-verify", "text-private", "Retype password"),
        ],
    )  # fmt: skip

    async def add_user(values: dict[str, list[str]], request: Request) -> Reply:
        username, domain = local(values["accountjid"][0])
        if domain != host:
            return error(f"Trying to add a user on {domain} but command was sent to {host}")
        password = (values["password"] or [""])[0]
        if password != (values["password-verify"] or [""])[0] or not username or not password:
            return error("Invalid data.\nPassword mismatch, or empty username")
        try:
            if not await users.create(username, password, source="admin", session=None):
                return error("Account already exists")
        except BadPassword as exc:
            return error(f"Invalid password: {exc}")
        module.log.info("account %s@%s created by %s", username, host, request.requester.bare)
        return Reply(notes=[("info", "Account successfully created")])

    password_form = Form(
        "form", "Changing a User Password", "Fill out this form to change a user's password.",
        [
            FORM_TYPE,
            Field("accountjid", "jid-single", "The Jabber ID for this account", required=True),
            Field("password", "text-private", "The password for this account", required=True),
        ],
    )  # fmt: skip

    async def change_password(values: dict[str, list[str]], request: Request) -> Reply:
        username, domain = local(values["accountjid"][0])
        if domain != host:
            return error(
                f"Trying to change the password of a user on {domain} but command was sent to"
                f" {host}"
            )
        try:
            changed = username is not None and await users.set_password(
                username, values["password"][0], source="admin"
            )
        except BadPassword as exc:
            return error(f"Invalid password: {exc}")
        if changed:
            return Reply(notes=[("info", "Password successfully changed")])
        return error("User does not exist")

    delete_form = Form(
        "form", "Deleting a User", "Fill out this form to delete a user.",
        [FORM_TYPE, Field("accountjids", "jid-multi", "The Jabber ID(s) to delete", required=True)],
    )  # fmt: skip

    async def delete_users(values: dict[str, list[str]], request: Request) -> Reply:
        done: list[str] = []
        failed: list[str] = []
        for jid in values["accountjids"]:
            username, domain = local(jid)
            ok = domain == host and username and await users.delete(username, source="admin")
            (done if ok else failed).append(jid)
        return Reply(notes=[("info", report(done, failed, "deleted"))])

    end_form = Form(
        "form", "Ending a User Session", "Fill out this form to end a user's session.",
        [
            FORM_TYPE,
            Field("accountjids", "jid-multi", "The Jabber ID(s) for which to end sessions",
                  required=True),
        ],
    )  # fmt: skip

    async def end_sessions(values: dict[str, list[str]], request: Request) -> Reply:
        done: list[str] = []
        failed: list[str] = []
        for jid in values["accountjids"]:
            parsed = JID.parse(jid)
            if parsed.domain != host or not parsed.node or not await users.exists(parsed.node):
                failed.append(jid)
                continue
            for session in module.sessions_of(parsed.node):
                if parsed.resource is None or session.resource == parsed.resource:
                    session.close()
            done.append(jid)
        return Reply(notes=[("info", report(done, failed, "disconnected"))])

    roster_form = Form(
        "form", None, None,
        [
            FORM_TYPE,
            Field("accountjid", "jid-single", "The Jabber ID for which to retrieve the roster",
                  required=True),
        ],
    )  # fmt: skip

    async def user_roster(values: dict[str, list[str]], request: Request) -> Reply:
        username, domain = local(values["accountjid"][0])
        if domain != host:
            return elsewhere("get roster for", domain)
        if not username or not await users.exists(username):
            return error("User does not exist")
        query = st.element(f"{{{NS_ROSTER}}}query")
        for contact, item in (await module.rosters.items(host, username)).items():
            attrs = {
                "jid": contact, "subscription": item.subscription,
                "ask": "subscribe" if item.ask else None, "name": item.name,
            }  # fmt: skip
            element = st.sub(query, f"{{{NS_ROSTER}}}item", attrs)
            for group in item.groups:
                st.sub(element, f"{{{NS_ROSTER}}}group", text=group)
        # Prosody's text: its serialisation, a line per tag, one <value/> per line
        lines = lua_xml(query).replace("><", ">\n<").splitlines()
        result = Form(
            "result", None, None,
            [
                FORM_TYPE,
                Field("accountjid", "jid-single", "This is the roster for",
                      values=(f"{username}@{host}",)),
                Field("roster", "text-multi", "Roster XML", values=tuple(filter(None, lines))),
            ],
        ).element()  # fmt: skip
        result.append(query)  # and the roster itself, as Prosody adds it to the form
        return Reply(other=result)

    stats_form = Form(
        "form",
        "Get User Statistics",
        "Fill out this form to gather user statistics.",
        [
            FORM_TYPE,
            Field("accountjid", "jid-single", "The Jabber ID for statistics", required=True),
        ],
    )

    async def user_stats(values: dict[str, list[str]], request: Request) -> Reply:
        username, domain = local(values["accountjid"][0])
        if domain != host:
            return elsewhere("get stats for", domain)
        if not username or not await users.exists(username):
            return error("User does not exist")
        sessions = module.sessions_of(username)
        ips = tuple(s.ip for s in sessions)
        roster_size = len(await module.rosters.items(host, username))
        result = Form(
            "result", None, None,
            [
                FORM_TYPE,
                Field("ipaddresses", "text-multi", "IP Addresses", values=ips),
                Field("rostersize", "text-single", "Roster size", values=(str(roster_size),)),
                Field("onlineresources", "text-multi", "Online Resources",
                      values=tuple(s.resource or "" for s in sessions)),
            ],
        )  # fmt: skip
        return Reply(form=result)

    limits = ("25", "50", "75", "100", "150", "200", "all")
    online_form = Form(
        "form", "Getting List of Online Users", "How many users should be returned at most?",
        [
            FORM_TYPE,
            Field("max_items", "list-single", "Maximum number of users",
                  options=tuple((v, v) for v in limits)),
            Field("details", "boolean", "Show details"),
        ],
    )  # fmt: skip

    def online_users() -> list[str]:
        return sorted({s.username for s in module.all_sessions() if s.username})

    async def online_list(values: dict[str, list[str]], request: Request) -> Reply:
        limit = (values.get("max_items") or ["all"])[0]
        names = online_users()
        if limit != "all" and limit.isdigit():
            names = names[: int(limit)]
        details = (values.get("details") or ["false"])[0] in ("1", "true")
        lines = []
        for name in names:
            lines.append(f"{name}@{host}")
            if details:
                for s in module.sessions_of(name):
                    show = s.presence.findtext("show") if s.presence is not None else None
                    status = "unavailable" if s.presence is None else show or "available"
                    lines.append(f" - {s.resource}: {status}({s.priority}), IP: [{s.ip}]")
        result = Form(
            "result", None, None,
            [FORM_TYPE, Field("onlineuserjids", "text-multi", "The list of all online users",
                              values=tuple(lines))],
        )  # fmt: skip
        return Reply(form=result)

    async def count_of(var: str, label: str, number: int) -> Reply:
        field = Field(var, "text-single", label, values=(str(number),))
        return Reply(form=Form("result", None, None, [FORM_TYPE, field]))

    async def registered_count(request: Request) -> Reply:
        return await count_of(
            "registeredusersnum", "The number of registered users", await users.count()
        )

    async def online_count(request: Request) -> Reply:
        return await count_of("onlineusersnum", "The number of online users", len(online_users()))

    async def registered_list(request: Request) -> Reply:
        jids = tuple(f"{name}@{host}" for name in await users.list())  # sorted
        result = Form(
            "result",
            None,
            None,
            [
                FORM_TYPE,
                Field("registereduserjids", "jid-multi", "The list of all users", values=jids),
            ],
        )
        return Reply(form=result)

    for node, name, handler in (
        ("add-user", "Add User", simple(add_form, add_user)),
        ("change-user-password", "Change User Password", simple(password_form, change_password)),
        ("delete-user", "Delete User", simple(delete_form, delete_users)),
        ("end-user-session", "End User Session", simple(end_form, end_sessions)),
        ("get-user-roster", "Get User Roster", simple(roster_form, user_roster)),
        ("user-stats", "Get User Statistics", simple(stats_form, user_stats)),
        ("get-online-users-list", "Get List of Online Users", simple(online_form, online_list)),
        ("get-registered-users-num", "Get Number of Registered Users", registered_count),
        ("get-registered-users-list", "Get List of Registered Users", registered_list),
        ("get-online-users-num", "Get Number of Online Users", online_count),
    ):
        module.add_item("adhoc", Command(f"{NS_ADMIN}#{node}", name, handler, "admin"))


def report(done: list[str], failed: list[str], verb: str) -> str:
    """Prosody's words for a batch: which accounts it worked for, which not."""
    text = ""
    if done:
        text += f"The following accounts were successfully {verb}:\n" + "\n".join(done) + "\n"
    if failed:
        text += f"The following accounts could not be {verb}:\n" + "\n".join(failed)
    return text


def lua_xml(element: etree._Element, parent_ns: str | None = None) -> str:
    """``element`` as Prosody's util.stanza writes it: ``xmlns`` as an attribute where it
    changes, values in single quotes, empty elements closed with ``/>``."""
    name = etree.QName(element)
    attrs = [] if name.namespace == parent_ns else [("xmlns", name.namespace or "")]
    attrs += [(str(k), str(v)) for k, v in element.attrib.items()]
    head = name.localname + "".join(f" {k}='{escape(v)}'" for k, v in attrs)
    inner = escape(element.text or "") + "".join(lua_xml(c, name.namespace) for c in element)
    return f"<{head}>{inner}</{name.localname}>" if inner else f"<{head}/>"


def escape(text: str) -> str:
    return st.escape(text).replace('"', "&quot;")

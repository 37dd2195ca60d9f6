"""Invites as data: the ``Invite`` record, its tokens, durations and URL templates."""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field, fields
from typing import Any

from minixmpp.events import EventName
from minixmpp.jid import InvalidJID, nodeprep

DAY = 86400
RESET_EXPIRY = DAY
KINDS = ("account", "password-reset", "account-and-contact", "contact-only")  # Prosody 13's

_UNITS = {
    "s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
    "d": DAY, "day": DAY, "w": 7 * DAY, "week": 7 * DAY, "month": 30 * DAY, "year": 365 * DAY,
}  # fmt: skip
_DURATION = re.compile(r"\s*(\d+)\s*([a-z]*?)s?\s*")
MAX_DURATION = 100 * 365 * DAY  # dates stay printable; nobody needs an invite for longer


def parse_duration(value: int | str) -> int:
    """Seconds from a number or a period like ``"1 week"``, ``"7d"``, ``"12 hours"``
    (Prosody 13's words; ``"1m"`` is refused as ambiguous)."""
    if isinstance(value, int):
        seconds = value
    else:
        match = _DURATION.fullmatch(value.lower())
        if match is None or (match.group(2) and match.group(2) not in _UNITS):
            raise ValueError(f"not a duration: {value!r} (e.g. 3600, '12h', '7 days', '1 week')")
        seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    if seconds > MAX_DURATION:
        raise ValueError("a duration must be at most 100 years")
    return seconds


# A token in any text (a URI, a landing page URL, a message body): cut from the wire log, the
# first 4 characters kept.
TOKEN_IN_TEXT = re.compile(
    r"(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{4})[A-Za-z0-9_-]{20}(?![A-Za-z0-9_-])"
)


def new_token() -> str:
    """24 URL-safe characters: 18 random bytes (144 bits), base64url, no padding."""
    return base64.urlsafe_b64encode(secrets.token_bytes(18)).decode()


def short(token: str) -> str:
    """What a log may show of a token."""
    return token[:4] + "…"


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.~_-")


def url_escape(text: str) -> str:
    """Prosody's interpolation escape: keep ``[A-Za-z0-9.~_-]``, else lower-case ``%xx``."""
    return "".join(chr(b) if b in _SAFE else f"%{b:02x}" for b in text.encode())


_FIELD = re.compile(r"\{([a-z_.]+)([!?&]?)([^}]*)\}")


def interpolate(template: str, values: dict[str, str | None]) -> str:
    """Prosody's util.interpolation, the parts invite templates use: ``{name}`` (escaped),
    ``{name!}`` (raw), ``{name?default}`` and ``{name&text}``."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        value = values.get(name)
        if op == "?":
            return url_escape(value) if value else arg
        if op == "&":
            return arg if value else ""
        if value is None:
            return ""
        return value if op == "!" else url_escape(value)

    return _FIELD.sub(one, template)


@dataclass
class Invite:
    token: str
    type: str  # "register" (account, reset) or "roster" (contact)
    jid: str  # the host, user@host (bound or reset) or the inviter's JID (contact)
    inviter: str | None = None  # the issuing user (contact invites)
    subject: str | None = None  # the username it is for (bound account invites and resets)
    allow_registration: bool = True
    reusable: bool = False
    max_uses: int | None = None
    uses: int = 0
    roles: list[str] = field(default_factory=list)  # primary first
    groups: list[str] = field(default_factory=list)
    allow_reset: str | None = None
    source: str | None = None
    note: str | None = None
    uri: str = ""
    landing_page: str | None = None
    created_at: int = 0
    expires: int = 0

    @property
    def kind(self) -> str:
        if self.type == "roster":
            return "account-and-contact" if self.allow_registration else "contact-only"
        return "password-reset" if self.allow_reset else "account"

    @property
    def link(self) -> str:
        """What to hand out: the landing page if there is one, else the URI."""
        return self.landing_page or self.uri

    def describe(self) -> str:
        if self.kind == "password-reset":
            return f"Password reset for {self.allow_reset}"
        if self.kind == "contact-only":
            return f"Contact invite from {self.inviter}"
        if self.kind == "account-and-contact":
            return f"Account and contact invite from {self.inviter}"
        text = f"Account invite for {self.subject}" if self.subject else "Account invite"
        if self.reusable:
            limit = f"{self.uses}/{self.max_uses}" if self.max_uses else f"{self.uses}"
            text = f"Reusable account invite ({limit} uses)"
        if self.roles:
            text += f", roles {', '.join(self.roles)}"
        if self.groups:
            text += f", groups {', '.join(self.groups)}"
        return text

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if v not in (None, [], "")}
        data["kind"], data["link"] = self.kind, self.link
        return data

    def stored(self) -> dict[str, Any]:
        """What the store keeps (all fields)."""
        return dict(self.__dict__)

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> Invite:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


INVITE_CREATED: EventName[Invite] = EventName("invite-created")  # before it is stored


@dataclass(slots=True)
class InviteUsed:
    """``invite`` was used by ``username`` (a bare name on the host, or, for a subscription,
    the contact's bare JID) to ``purpose``: "register", "reset" or "subscribe"."""

    invite: Invite
    username: str
    purpose: str


INVITE_USED: EventName[InviteUsed] = EventName("invite-used")  # once its use is stored


def prepared(username: str) -> str:
    """A username as accounts have it (nodeprep); ValueError if it cannot be one."""
    try:
        return nodeprep(username, strict=True)
    except InvalidJID:
        raise ValueError(f"invalid username: {username!r}") from None

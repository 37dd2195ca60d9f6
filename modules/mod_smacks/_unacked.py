"""What becomes of the stanzas a client never acknowledged when its session ends (XEP-0198 §4:
"in the same way that it would treat a stanza sent to an unavailable resource").

Prosody's mod_smacks rules, in order, for each stanza (oldest first, each stamped with when it
was first sent): a chat or normal message goes to offline storage (``message/offline/handle``,
mod_offline) if this was the user's last session; a message archive result is dropped (the
client can ask the archive again); anything else, or a message the offline store refused, is
bounced to its sender with ``cancel/recipient-unavailable``, unless it is an error or came from
the session itself (a carbon's bounce goes to the user's own bare JID, where routing drops it).
Where Prosody is lax, minixmpp is stricter: presence is dropped (Prosody bounced it, so contacts
got presence errors), only IQ requests are bounced (Prosody answered results and errors too,
which RFC 6120 §8.2.3 forbids), and nothing is stored for an account that is gone.
"""

from __future__ import annotations

from minixmpp.errors import StanzaError
from minixmpp.events import StanzaEvent
from minixmpp.jid import JID
from minixmpp.module import Module
from minixmpp.session import Session
from minixmpp.xml import stanza as st

from ._state import stamped

OFFLINE = "message/offline/handle"
MAM_RESULT = "{urn:xmpp:mam:2}result"


async def dispose(module: Module, session: Session, items: list[tuple[bytes, float]]) -> None:
    """Store or bounce ``items`` (the queue of ``session``, which has just ended)."""
    username = session.username
    assert username is not None
    bare = f"{username}@{module.host}"
    own = session.jid.full
    # The user's last session: none other is bound (the ended one is not among them, but
    # one that took its resource over already is: as in Prosody, where the new one is bound
    # after the old is gone, that one gets these from offline storage at its presence). An
    # account that is gone keeps nothing (Prosody would store for it).
    last = all(other.jid.full == own for other in module.sessions_of(username))
    last = last and await module.users.exists(username)
    stored = bounced = 0
    for data, when in items:
        stanza = st.from_stored(data)
        if stanza is None:
            continue
        stamped(stanza, bare, when)
        tag, kind = stanza.tag, stanza.get("type")
        if tag == "message":
            if (kind or "normal") in ("chat", "normal"):
                if stanza.find(MAM_RESULT) is not None:
                    continue
                to = JID(username, module.host)
                if last and await module.fire(OFFLINE, StanzaEvent(session, stanza, to)):
                    stored += 1
                    continue
            if kind == "error":
                continue
        elif tag != "iq" or kind not in ("get", "set"):
            continue
        if stanza.get("from") == own:
            continue
        error = StanzaError("recipient-unavailable", type="cancel")
        await module.send(st.error_reply(stanza, error))
        bounced += 1
    if stored or bounced:
        module.log.info(
            "%s ended with %d unacknowledged stanzas: %d stored offline, %d bounced",
            own,
            len(items),
            stored,
            bounced,
        )

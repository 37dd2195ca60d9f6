"""JIDs (RFC 6122 / RFC 7622 address format) with Prosody's preparation rules.

Like Prosody, parts are prepared with the stringprep profiles of RFC 3920: Nodeprep for the
localpart, Nameprep for the domain and Resourceprep for the resource. The tables come from the
standard library's ``stringprep`` module (RFC 3454, Unicode 3.2), not from hand-written lists.
``strict`` forbids unassigned code points, as Prosody does for stored identifiers (new accounts).
"""

from __future__ import annotations

import stringprep
import unicodedata
from functools import lru_cache

__all__ = ["JID", "InvalidJID", "nameprep", "nodeprep", "resourceprep"]

_NFKC = unicodedata.ucd_3_2_0.normalize
_MAX_PART = 1023  # bytes, RFC 6122 §2.1

# RFC 3920 Appendix A.5: characters Nodeprep prohibits on top of the common tables.
_NODE_EXTRA = frozenset("\"&'/:<>@")

_COMMON_PROHIBITED = (
    stringprep.in_table_c12,
    stringprep.in_table_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)
_NODE_PROHIBITED = (stringprep.in_table_c11, stringprep.in_table_c21, *_COMMON_PROHIBITED)
_RESOURCE_PROHIBITED = (stringprep.in_table_c21, *_COMMON_PROHIBITED)
# Nameprep itself allows ASCII controls (C.2.1); domains never may (IDNA STD3 rules), and the
# ASCII fast path refuses them, so both paths agree.
_NAME_PROHIBITED = (stringprep.in_table_c21, *_COMMON_PROHIBITED)


class InvalidJID(ValueError):
    """The string is not a valid JID, or a part fails its stringprep profile."""


def _prep(
    text: str,
    *,
    casefold: bool,
    prohibited: tuple[object, ...],
    extra: frozenset[str],
    strict: bool,
) -> str:
    if strict:  # checked on the input: the tables below know nothing of later code points
        for c in text:
            if stringprep.in_table_a1(c):
                raise InvalidJID(f"unassigned code point U+{ord(c):04X}")
    chars = [c for c in text if not stringprep.in_table_b1(c)]
    mapped = "".join(_map_b2(c) for c in chars) if casefold else "".join(chars)
    result = _NFKC("NFKC", mapped)
    has_randal = has_l = False
    for c in result:
        if c in extra or any(check(c) for check in prohibited):  # type: ignore[operator]
            raise InvalidJID(f"prohibited character U+{ord(c):04X}")
        if strict and stringprep.in_table_a1(c):
            raise InvalidJID(f"unassigned code point U+{ord(c):04X}")
        if stringprep.in_table_d1(c):
            has_randal = True
        elif stringprep.in_table_d2(c):
            has_l = True
    if has_randal and (
        has_l or not stringprep.in_table_d1(result[0]) or not stringprep.in_table_d1(result[-1])
    ):
        raise InvalidJID("bidirectional text rules violated")
    return result


def _check_input_size(text: str) -> None:
    # As Prosody (util.encodings): a part of 1024 bytes or more is refused before preparation,
    # even when mapping would shorten it (soft hyphens are mapped to nothing).
    try:
        size = len(text.encode())
    except UnicodeEncodeError:  # a lone surrogate, e.g. from command-line bytes not in UTF-8
        raise InvalidJID("not valid Unicode") from None
    if size > _MAX_PART:
        raise InvalidJID("too long")


def _map_b2(c: str) -> str:
    """Table B.2 as of Unicode 3.2. The standard library's table lower-cases with the current
    Unicode: it maps characters 3.2 did not have (U+03F9 to a sigma) or had without a lower case
    (U+2132 to U+214E, which came in 5.0). No such mapping existed in 3.2."""
    if stringprep.in_table_a1(c):
        return c
    mapped = stringprep.map_table_b2(c)
    if mapped != c and any(stringprep.in_table_a1(m) for m in mapped):
        return c
    return mapped


def _ascii_ok(text: str, extra: frozenset[str], allow_space: bool) -> bool:
    # For ASCII the profiles reduce to: no controls (C.2.1), no space for node/name (C.1.1),
    # no extra characters. B.1 and NFKC do not touch ASCII.
    for c in text:
        o = ord(c)
        if o < 0x20 or o == 0x7F or c in extra or (c == " " and not allow_space):
            return False
    return True


@lru_cache(maxsize=8192)
def nodeprep(text: str, strict: bool = False) -> str:
    """Prepare a localpart (RFC 3920 Appendix A). Raises InvalidJID."""
    _check_input_size(text)
    if text.isascii():
        if not _ascii_ok(text, _NODE_EXTRA, allow_space=False):
            raise InvalidJID("prohibited character in localpart")
        result = text.lower()
    else:
        result = _prep(
            text, casefold=True, prohibited=_NODE_PROHIBITED, extra=_NODE_EXTRA, strict=strict
        )
    if not result or len(result.encode()) > _MAX_PART:
        raise InvalidJID("empty or too long localpart")
    return result


@lru_cache(maxsize=1024)
def nameprep(text: str, strict: bool = False) -> str:
    """Prepare a domain (Nameprep, RFC 3491), dropping one trailing dot as Prosody does."""
    _check_input_size(text)
    if text.endswith("."):
        text = text[:-1]
    if text.isascii():
        if not _ascii_ok(text, frozenset(), allow_space=False):
            raise InvalidJID("prohibited character in domain")
        result = text.lower()
    else:
        result = _prep(
            text, casefold=True, prohibited=_NAME_PROHIBITED, extra=frozenset(), strict=strict
        )
    if not result or len(result.encode()) > _MAX_PART:
        raise InvalidJID("empty or too long domain")
    if result.startswith("[") and result.endswith("]"):
        return result  # IPv6 literal
    if any(c in result for c in "@/\\ ,;:!?#%&'\"<>[]{}|^`~=+*$()"):
        raise InvalidJID("invalid character in domain")
    for label in result.split("."):
        try:
            encoded = label.encode("ascii" if label.isascii() else "idna")
        except UnicodeError as exc:
            raise InvalidJID("invalid domain label") from exc
        if not label or len(encoded) > 63:
            raise InvalidJID("invalid domain label")
    return result


@lru_cache(maxsize=8192)
def resourceprep(text: str, strict: bool = False) -> str:
    """Prepare a resource (RFC 3920 Appendix B). Raises InvalidJID."""
    _check_input_size(text)
    if text.isascii():
        if not _ascii_ok(text, frozenset(), allow_space=True):
            raise InvalidJID("prohibited character in resource")
        result = text
    else:
        result = _prep(
            text,
            casefold=False,
            prohibited=_RESOURCE_PROHIBITED,
            extra=frozenset(),
            strict=strict,
        )
    if not result or len(result.encode()) > _MAX_PART:
        raise InvalidJID("empty or too long resource")
    return result


class JID:
    """A prepared JID. Immutable; compare and hash by its full string form."""

    __slots__ = ("bare", "domain", "full", "node", "resource")

    node: str | None
    domain: str
    resource: str | None
    bare: str
    full: str

    def __init__(self, node: str | None, domain: str, resource: str | None = None) -> None:
        # Parts are assumed prepared; use JID.parse() or JID.prep() for untrusted input.
        object.__setattr__(self, "node", node)
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "resource", resource)
        bare = f"{node}@{domain}" if node else domain
        object.__setattr__(self, "bare", bare)
        object.__setattr__(self, "full", f"{bare}/{resource}" if resource else bare)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("JID is immutable")

    @classmethod
    def parse(cls, text: str, *, strict: bool = False) -> JID:
        """Split and prepare ``text``. Raises InvalidJID."""
        return _parse(text, strict)

    def with_resource(self, resource: str | None) -> JID:
        return JID(self.node, self.domain, resource)

    @property
    def bare_jid(self) -> JID:
        return self if self.resource is None else JID(self.node, self.domain)

    def __str__(self) -> str:
        return self.full

    def __repr__(self) -> str:
        return f"JID({self.full!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JID) and other.full == self.full

    def __hash__(self) -> int:
        return hash(self.full)


@lru_cache(maxsize=16384)
def _parse(text: str, strict: bool) -> JID:
    if not text:
        raise InvalidJID("empty JID")
    rest, slash, resource = text.partition("/")
    if slash and not resource:
        raise InvalidJID("empty resource")
    node, at, domain = rest.partition("@")
    if not at:
        node, domain = "", rest
    elif not node:
        raise InvalidJID("empty localpart")
    return JID(
        nodeprep(node, strict) if node else None,
        nameprep(domain, strict),
        resourceprep(resource, strict) if slash else None,
    )

"""What a slot request may ask for: file names, sizes and content types (and the type
patterns of the options), and the record kept for each slot."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from minixmpp.errors import ModuleError
from minixmpp.events import EventName

NS = "urn:xmpp:http:upload:0"
OCTET_STREAM = "application/octet-stream"
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(
    rf"({_TCHARS})/({_TCHARS})(\s*;\s*{_TCHARS}=({_TCHARS}|\"[^\"\\\x00-\x1f\x7f]*\"))*"
)
_PATTERN = re.compile(rf"{_TCHARS}/({_TCHARS}|\*)")
_SIZE = re.compile(r"[0-9]{1,18}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME_BYTES = 255  # what a file system allows in one name
MAX_TYPE_LENGTH = 255


def valid_filename(name: str | None) -> bool:
    """A name that can be one URL path segment and a download's file name. Prosody refuses
    only '/'; empty names, '.', '..', control characters and names over 255 bytes too."""
    return (
        name is not None
        and name not in ("", ".", "..")
        and "/" not in name
        and not _CONTROL.search(name)
        and len(name.encode()) <= MAX_NAME_BYTES
    )


def parse_size(text: str | None) -> int | None:
    """A size attribute as a whole number of bytes (no sign, no exponent), or None."""
    if text is None or not _SIZE.fullmatch(text):
        return None
    return int(text)


def valid_content_type(text: str) -> bool:
    """A media type (``type/subtype`` and parameters) that can go into a header as it is."""
    return len(text) <= MAX_TYPE_LENGTH and _MEDIA_TYPE.fullmatch(text) is not None


def media_type(content_type: str) -> str:
    """``type/subtype`` in lower case, without parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def check_patterns(option: str, patterns: Iterable[str]) -> frozenset[str]:
    """An option's types (``image/png``, ``image/*``), lower case; ModuleError for others."""
    found = set()
    for pattern in patterns:
        if not _PATTERN.fullmatch(pattern):
            raise ModuleError(
                f"{option}: {pattern!r} is not a type such as 'image/png' or 'image/*'"
            )
        found.add(pattern.lower())
    return frozenset(found)


def matches(patterns: frozenset[str], content_type: str) -> bool:
    """The type is one of the patterns, or of a ``type/*`` among them (Prosody's rule)."""
    kind = media_type(content_type)
    return kind in patterns or kind.split("/", 1)[0] + "/*" in patterns


@dataclass(frozen=True)
class Record:
    """What is kept of a slot (the archive item's value; its id is the slot, its time when the
    slot was issued, its peer the uploader's bare JID)."""

    filename: str
    size: int
    type: str | None  # the content-type the slot was asked for, if any

    def encode(self) -> bytes:
        value = {"filename": self.filename, "size": self.size, "type": self.type}
        return json.dumps(value).encode()

    @classmethod
    def decode(cls, data: bytes) -> Record | None:
        try:
            value = json.loads(data)
            filename, size, kind = value["filename"], value["size"], value["type"]
        except (ValueError, KeyError, TypeError):
            return None
        if not (isinstance(filename, str) and isinstance(size, int)):
            return None
        return cls(filename, size, kind if isinstance(kind, str) else None)

    @property
    def served_type(self) -> str:
        return self.type or OCTET_STREAM


@dataclass(frozen=True)
class Upload:
    """A PUT into a slot: ``upload-started`` once the server writes it (another PUT into the
    slot gets 409 from then on), ``upload-stored`` once its file is whole and served."""

    slot: str
    uploader: str | None  # bare JID
    filename: str
    size: int


UPLOAD_STARTED: EventName[Upload] = EventName("upload-started")
UPLOAD_STORED: EventName[Upload] = EventName("upload-stored")

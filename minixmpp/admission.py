"""Admission of client connections: how many may wait unauthenticated, per address and in all.

An unauthenticated connection costs a file descriptor and memory, and anyone can open one: with
no cap, one address holding a thousand idle ones (each allowed ``c2s_timeout`` to log in) used up
the descriptors and locked every new login out. So each client connection counts, from its
accept (before any TLS handshake) until it authenticates or ends, against its address and against
the total:

- ``c2s_max_unauthed_per_ip`` per address. IPv6 addresses count per /64, what one subscriber
  gets; IPv4-mapped IPv6 addresses as IPv4. Addresses in ``unlimited_ips`` (loopback by default:
  test suites log many clients in at once from there) have no cap of their own.
- ``c2s_max_unauthed`` in all (by default half the open-files limit, at most 10 000), so that
  descriptors are left for authenticated users however many addresses take part.

Beyond a cap a new connection is refused: with a stream error where one can be sent at once
(``policy-violation`` for its address, ``resource-constraint`` for the server as a whole), else
(direct TLS, before the handshake) by closing it at once. Authenticated connections never count:
users, those from a capped address too, keep being accepted and served.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger("minixmpp.admission")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
TOTAL_CEILING = 10_000  # the automatic c2s_max_unauthed never goes above this


@dataclass(frozen=True)
class Refusal:
    condition: str
    text: str


PER_ADDRESS = Refusal("policy-violation", "Too many unauthenticated connections from your address")
TOTAL = Refusal("resource-constraint", "Too many connections are waiting to authenticate")


def parse_networks(entries: Iterable[str]) -> list[Network]:
    """Addresses or CIDR ranges; ValueError names the first that is neither."""
    found: list[Network] = []
    for entry in entries:
        try:
            found.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or range") from None
    return found


def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(ip.partition("%")[0])  # no IPv6 zone
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class AddressSet:
    """A set of addresses and ranges (``unlimited_ips``)."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._networks = parse_networks(entries)

    def __contains__(self, ip: object) -> bool:
        address = _address(ip) if isinstance(ip, str) else None
        return address is not None and any(address in net for net in self._networks)


def address_key(ip: str) -> str:
    """What per-address limits count by: the IPv4 address, or the IPv6 /64."""
    address = _address(ip)
    if address is None:
        return ip
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def automatic_total(open_files: int) -> int:
    """The default ``c2s_max_unauthed``: half the open-files limit (-1: none), at most
    ``TOTAL_CEILING``."""
    if open_files < 0:
        return TOTAL_CEILING
    return max(1, min(TOTAL_CEILING, open_files // 2))


class Admission:
    """Counts unauthenticated connections (see the module docstring); 0 turns a cap off."""

    def __init__(self, *, per_address: int, total: int, unlimited: AddressSet) -> None:
        self.per_address = per_address
        self.total = total
        self.unlimited = unlimited
        self.count = 0
        self._by_key: dict[str, int] = {}
        self._refusing: set[str] = set()  # addresses told of in the log since they hit the cap
        self._refusing_all = False

    def enter(self, ip: str) -> Refusal | None:
        """Count a new connection from ``ip``; or, beyond a cap, count nothing and say why."""
        key = address_key(ip)
        capped = self.per_address > 0 and ip not in self.unlimited
        if capped and self._by_key.get(key, 0) >= self.per_address:
            if key not in self._refusing:
                self._refusing.add(key)
                log.warning(
                    "%s has %d unauthenticated connections: refusing more"
                    " (c2s_max_unauthed_per_ip)",
                    key,
                    self.per_address,
                )
            return PER_ADDRESS
        if self.total > 0 and self.count >= self.total:
            if not self._refusing_all:
                self._refusing_all = True
                log.warning(
                    "%d unauthenticated connections: refusing more (c2s_max_unauthed)", self.total
                )
            return TOTAL
        self.count += 1
        self._by_key[key] = self._by_key.get(key, 0) + 1
        return None

    def leave(self, ip: str) -> None:
        """A counted connection authenticated or ended."""
        key = address_key(ip)
        left = self._by_key.get(key, 0) - 1
        if left > 0:
            self._by_key[key] = left
        else:
            self._by_key.pop(key, None)
        self.count -= 1
        if left < self.per_address:
            self._refusing.discard(key)
        if self.count < self.total:
            self._refusing_all = False

    def of(self, ip: str) -> int:
        """Unauthenticated connections counted for ``ip``'s address."""
        return self._by_key.get(address_key(ip), 0)

"""Who may hold a connection: a cap per worker and per client address, checked at accept.

A connection over either cap is refused before any TLS handshake or parsing: a plain one
gets a canned ``503`` with ``Retry-After`` written without waiting (an HTTP/1.1 client
then knows why), then the socket closes; a TLS one is closed.

Behind a trusted proxy (``trusted_proxies``) every connection comes from the proxy's
address, so those are not counted by address at accept; the connection is counted against
the client its first request names in ``X-Forwarded-For`` (the right-most address that is
not a trusted proxy) as soon as that request's head is read, and refused the same way if
that client is over its cap. A proxy that carries several clients on one connection
(HTTP/2, pooled keep-alive) is counted once, by the first.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable

__all__ = ["REFUSAL", "Gate", "forwarded_client", "parse_networks", "refuse"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: What a refused plain connection is told (one non-blocking write, then the close).
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\n"
           b"content-type: text/plain\r\ncontent-length: 21\r\n\r\ntoo many connections\n")

_FORWARDED_FOR = re.compile(rb"\r\nx-forwarded-for:[ \t]*([^\r\n]*)", re.IGNORECASE)


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``10.0.0.0/8``, ``192.168.1.7``, ``::1``: networks; ``ValueError`` names a bad one."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an address or network (CIDR): {entry!r}") from None
    return tuple(networks)


def _is_in(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def forwarded_client(head: bytes, trusted: tuple[Network, ...]) -> str | None:
    """The client a trusted proxy names in the first ``X-Forwarded-For`` of ``head``."""
    end = head.find(b"\r\n\r\n")
    found = _FORWARDED_FOR.search(head, 0, len(head) if end < 0 else end + 2)
    if found is None:
        return None
    value: bytes = found.group(1)
    hops = [hop.strip() for hop in value.decode("latin-1").split(",")]
    for hop in reversed(hops):
        if hop and not _is_in(hop, trusted):
            return hop[:64]
    return None


def refuse(sock: socket.socket, plain: bool) -> None:
    """Refuse an accepted connection at once: the canned 503 if plain, then close."""
    if plain:
        try:
            sock.setblocking(False)
            sock.send(REFUSAL)
        except OSError:
            pass  # gone already, or no room: the close says enough
    sock.close()


class Gate:
    """The open connections of one worker, in total and by client address."""

    def __init__(self, max_connections: int, max_per_client: int,
                 trusted_proxies: tuple[Network, ...] = ()) -> None:
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.trusted_proxies = trusted_proxies
        self.open = 0
        self._by_client: dict[str, int] = {}

    def is_proxy(self, address: str) -> bool:
        return bool(self.trusted_proxies) and _is_in(address, self.trusted_proxies)

    def admit(self, client: str | None) -> str | None:
        """Count a new connection of ``client`` (None: not counted by address); None if
        admitted, else why not (``worker_limit``, ``client_limit``)."""
        if self.open >= self.max_connections:
            return "worker_limit"
        if client is not None and not self.add_client(client):
            return "client_limit"
        self.open += 1
        return None

    def add_client(self, client: str) -> bool:
        """Count one more connection of ``client``; False (not counted) if over its cap."""
        held = self._by_client.get(client, 0)
        if held >= self.max_per_client:
            return False
        self._by_client[client] = held + 1
        return True

    def release(self, client: str | None) -> None:
        """A connection admitted by :meth:`admit` closed (``client``: as counted)."""
        self.open -= 1
        if client is not None:
            self.remove_client(client)

    def remove_client(self, client: str) -> None:
        held = self._by_client.get(client, 0) - 1
        if held > 0:
            self._by_client[client] = held
        else:
            self._by_client.pop(client, None)

    def held_by(self, client: str) -> int:
        return self._by_client.get(client, 0)

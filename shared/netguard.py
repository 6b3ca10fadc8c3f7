"""SSRF guard: Sendpy connects only to SMTP servers on public addresses unless told otherwise.

The host is resolved once, every address is checked, and the caller connects to the checked
address itself, so a DNS answer that changes between check and connect cannot redirect it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass


class HostRefused(Exception):
    """The host cannot be used; `code` names why (dns, private)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class VettedAddress:
    host: str
    address: str
    family: int


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address: judge the address they lead to.
        if ip in _LOCAL_NAT64:
            return False
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            ip = embedded
    return ip.is_global and not ip.is_multicast


async def vet_host(host: str, port: int, *, allow_private: bool) -> list[VettedAddress]:
    """Resolve `host` and return addresses it is allowed to connect to, public ones first."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostRefused("dns", f"the name {host!r} does not resolve") from exc
    addresses: list[VettedAddress] = []
    for family, _, _, _, sockaddr in infos:
        candidate = VettedAddress(host=host, address=str(sockaddr[0]), family=family)
        if candidate not in addresses:
            addresses.append(candidate)
    if not addresses:
        raise HostRefused("dns", f"the name {host!r} has no addresses")
    if allow_private:
        return addresses
    # Every address must be public: a name with one private answer is a rebinding tool.
    for candidate in addresses:
        if not is_public(candidate.address):
            raise HostRefused(
                "private",
                f"{host!r} resolves to {candidate.address}, a private or reserved address; "
                "this deployment only connects to public mail servers",
            )
    return addresses


async def open_socket(addresses: list[VettedAddress], port: int, timeout: float) -> socket.socket:
    """Connect to the first reachable vetted address; raises OSError of the last failure."""
    loop = asyncio.get_running_loop()
    last_error: OSError = OSError(f"no address to connect to on port {port}")
    for candidate in addresses:
        sock = socket.socket(candidate.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (candidate.address, port)), timeout)
        except TimeoutError:
            sock.close()
            last_error = TimeoutError(f"connecting to {candidate.host}:{port} timed out")
        except OSError as exc:
            sock.close()
            last_error = exc
        else:
            return sock
    raise last_error

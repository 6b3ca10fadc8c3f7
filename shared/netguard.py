"""SSRF guard: Sendpy connects only to SMTP servers on public addresses unless told otherwise.

The host is resolved once, every address is checked, and the caller connects to the checked
address itself, so a DNS answer that changes between check and connect cannot redirect it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

# Lookups block a thread each, and anyone can register a name whose DNS servers never answer.
# They get threads of their own, so such names tie up only these (never the default pool that
# renders templates and hashes passwords), and each gives up after DNS_SECONDS.
DNS_SECONDS = 8.0
_RESOLVERS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="dns")


class HostRefused(Exception):
    """The host cannot be used; `code` names why (dns, private, timeout)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class VettedAddress:
    host: str
    address: str
    family: int


_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d (includes :: and ::1)
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT ::ffff:0:a.b.c.d
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix: 64:ff9b::a.b.c.d
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # local-use NAT64: never a public server
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated site-local, private in practice
# Reserved ranges Python 3.11's `is_global` does not know yet: documentation (RFC 9637) and SRv6 SIDs.
_NOT_SERVERS = (ipaddress.ip_network("3fff::/20"), ipaddress.ip_network("5f00::/16"))


def _public_ipv4(ip: ipaddress.IPv4Address) -> bool:
    return ip.is_global and not ip.is_multicast


def _carried_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address is a spelling of (or is translated to), if any."""
    if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d
        return ip.ipv4_mapped
    if ip in _IPV4_COMPATIBLE or ip in _IPV4_TRANSLATED or ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if (int(ip) >> 32) & 0xFDFFFFFF == 0x5EFE:  # ISATAP, any prefix: …:0:5efe:a.b.c.d or …:200:5efe:a.b.c.d
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour  # 2002:aabb:ccdd::/48, or None


def is_public(address: str) -> bool:
    """Whether `address` (an IP literal) is a public unicast address Sendpy may connect to.

    An IPv6 address that carries an IPv4 address is judged by that IPv4 address: mapped,
    compatible, translated, NAT64, 6to4 and ISATAP forms of 127.0.0.1 are all 127.0.0.1. Teredo
    (2001::/32) must embed a public server and client and then still fails as a non-global prefix.
    """
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _SITE_LOCAL or ip in _LOCAL_NAT64 or any(ip in network for network in _NOT_SERVERS):
            return False
        teredo = ip.teredo
        if teredo is not None:
            if not all(_public_ipv4(embedded) for embedded in teredo):
                return False
        else:
            carried = _carried_ipv4(ip)
            if carried is not None:
                return _public_ipv4(carried)
        return ip.is_global and not ip.is_multicast
    return _public_ipv4(ip)


def _is_localhost_name(host: str) -> bool:
    """RFC 6761: "localhost" and every name under it mean this machine, whatever DNS says."""
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


async def vet_host(host: str, port: int, *, allow_private: bool) -> list[VettedAddress]:
    """Resolve `host` and return addresses it is allowed to connect to, public ones first.

    `host` is a name or an IP literal in any spelling getaddrinfo accepts (also `[v6]`); what
    is checked is every address it resolves to, so spellings of one address are judged alike.
    """
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # a bracketed IPv6 literal, as in URLs
    if not allow_private and _is_localhost_name(host):
        raise HostRefused("private", f"{host!r} names this machine; this deployment only connects to "
                                     "public mail servers")
    loop = asyncio.get_running_loop()
    lookup = functools.partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = await asyncio.wait_for(loop.run_in_executor(_RESOLVERS, lookup), DNS_SECONDS)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostRefused("dns", f"the name {host!r} does not resolve") from exc
    except TimeoutError:
        raise HostRefused("timeout", f"the DNS servers for {host!r} did not answer within {DNS_SECONDS:g} s") from None
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

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
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")  # 2002:aabb:ccdd::/48 tunnels to a.b.c.d
# IANA's global unicast space: everything outside it is reserved, local (fc00::/7, fe80::/10, the
# deprecated site-local fec0::/10, the local-use NAT64 64:ff9b:1::/48), multicast or unassigned,
# and Python 3.11's `is_global` calls much of that global (1::1, 4000::1, fec0::1, 5f00::1 …).
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
# Where Python 3.11's `is_global` says yes and no mail server can be. 192.0.0.0/24 is IETF protocol
# assignments, of which 3.11 knows only /29 and .170/31 (192.0.0.8 passed); IANA calls .9 and .10
# globally reachable, but they are PCP and TURN anycast: the nearest such service, i.e. a box in the
# operator's own network. 192.88.99.0/24 is the deprecated 6to4 relay anycast (RFC 7526). 2001::/23
# is refused whole, Teredo included, whatever a later Python's `is_global` makes of its exceptions
# (PCP/TURN anycast again, AMT, AS112, ORCHIDv2 identifiers). 3fff::/20 is documentation (RFC 9637).
_NOT_SERVERS_V4 = (ipaddress.ip_network("192.0.0.0/24"), ipaddress.ip_network("192.88.99.0/24"))
_NOT_SERVERS_V6 = (ipaddress.ip_network("2001::/23"), ipaddress.ip_network("3fff::/20"))


def _public_ipv4(ip: ipaddress.IPv4Address) -> bool:
    return ip.is_global and not ip.is_multicast and not any(ip in network for network in _NOT_SERVERS_V4)


def _spelled_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address is only another spelling of (or is translated to), if any."""
    if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d
        return ip.ipv4_mapped
    if ip in _IPV4_COMPATIBLE or ip in _IPV4_TRANSLATED or ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _tunnelled_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a 6to4 or ISATAP address is tunnelled to, if any."""
    # ISATAP, any prefix: the interface ID is [000000ug00000000]:5efe:a.b.c.d (RFC 5214), u and g either way
    if (int(ip) >> 32) & 0xFCFFFFFF == 0x5EFE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour  # 2002:aabb:ccdd::/48, or None


def is_public(address: str) -> bool:
    """Whether `address` (an IP literal) is a public unicast address Sendpy may connect to.

    An IPv6 address that is a spelling of an IPv4 address is judged by that address: mapped,
    compatible, translated and NAT64 forms of 127.0.0.1 are all 127.0.0.1. Any other IPv6 address
    must be global unicast, and a 6to4 or ISATAP one must also tunnel to a public IPv4 address
    (fd00::5efe:8.8.8.8 is still a host on the local network).
    """
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv4Address):
        return _public_ipv4(ip)
    spelled = _spelled_ipv4(ip)
    if spelled is not None:
        return _public_ipv4(spelled)
    if ip not in _GLOBAL_UNICAST or any(ip in network for network in _NOT_SERVERS_V6):
        return False
    tunnelled = _tunnelled_ipv4(ip)
    if tunnelled is not None and not _public_ipv4(tunnelled):
        return False
    # 6to4 is judged by its IPv4 address alone: Python 3.12.4 and later call all of 2002::/16 private.
    return ip in _SIX_TO_FOUR or ip.is_global


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

"""The SSRF guard: which addresses the workers may connect to.

Every spelling of a private, loopback, link-local or reserved address must be refused, because
the guard is only as good as the one spelling it forgot. Names are avoided for public cases
(there is no DNS here): IP literals go through getaddrinfo without a lookup.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared import netguard
from shared.mail import messenger
from shared.mail.messenger import ConnectError, ConnectPolicy, SmtpAccount, SmtpConnection
from shared.netguard import HostRefused, VettedAddress, is_public, vet_host

# Every way to write "this machine" or "a network behind the firewall".
PRIVATE_SPELLINGS = [
    "127.0.0.1",
    "2130706433",  # 127.0.0.1 as one decimal number
    "0x7f000001",  # ... in hex
    "0X7F000001",
    "0177.0.0.1",  # octal first octet
    "127.1",  # short forms: the last part fills the remaining bytes
    "127.0.1",
    "localhost",
    "LOCALHOST",
    "localhost.",  # fully qualified
    "LocalHost.",
    "mail.localhost",  # RFC 6761: everything under localhost is this machine
    "::1",
    "[::1]",  # bracketed, as in a URL
    "::",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "::7f00:1",  # the same, in hex
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::FFFF:7F00:1",
    "[::ffff:127.0.0.1]",
    "::ffff:0:7f00:1",  # IPv4-translated (SIIT)
    "64:ff9b::7f00:1",  # NAT64 well-known prefix
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::a00:1",  # local-use NAT64
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1 (stored inverted)
    "2001::ffff:fffe",  # Teredo, server 0.0.0.0, client 0.0.0.1
    "2600::5efe:7f00:1",  # ISATAP interface id carrying 127.0.0.1, under a public prefix
    "2600::200:5efe:a00:1",  # ISATAP with the universal bit, carrying 10.0.0.1
    "2600:1f18::5efe:a9fe:a9fe",  # ISATAP to the cloud metadata address
    "fec0::1",  # site-local (deprecated)
    "3fff::1",  # documentation (RFC 9637), unknown to Python 3.11
    "5f00::1",  # SRv6 SIDs
    "FEC0::1",
    "fc00::1",  # unique local
    "fd00::1",
    "fe80::1",  # link-local
    "fe80::1%lo",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",  # noqa: S104
    "0",
    "10.0.0.1",
    "192.168.1.1",
    "172.16.0.1",
    "224.0.0.1",  # multicast
    "ff02::1",
]

PUBLIC_LITERALS = [
    "8.8.8.8",
    "2001:4860:4860::8888",
    "[2001:4860:4860::8888]",
    "::ffff:8.8.8.8",  # forms that carry a public IPv4 address stay public
    "64:ff9b::808:808",
    "2002:808:808::",
    "2600::5efe:808:808",  # ISATAP carrying a public IPv4
]

# The IANA special-purpose registries (IPv4 and IPv6), checked entry by entry against Python 3.11's
# `is_global`: each line below was refused or passed by mistake until the guard said otherwise.
SPECIAL_PURPOSE_REFUSED = [
    "0.1.2.3",  # "this network" 0.0.0.0/8
    "100.127.255.255",  # shared address space 100.64.0.0/10, last address
    "192.0.0.8",  # IPv4 dummy address (RFC 7600): is_global in 3.11, passed the guard
    "192.0.0.9",  # PCP anycast: the nearest PCP server is the operator's own router
    "192.0.0.10",  # TURN anycast
    "192.0.0.11",  # unassigned within 192.0.0.0/24
    "192.0.0.255",
    "192.0.2.1",  # TEST-NET-1
    "192.88.99.1",  # deprecated 6to4 relay anycast
    "198.18.0.1",  # benchmarking 198.18.0.0/15
    "198.19.255.255",
    "198.51.100.7",  # TEST-NET-2
    "203.0.113.7",  # TEST-NET-3
    "233.252.0.1",  # MCAST-TEST-NET
    "240.0.0.1",  # reserved 240.0.0.0/4
    "255.255.255.255",  # limited broadcast
    "::ffff:192.0.0.8",  # spellings of the above
    "::ffff:0:c000:8",
    "::c000:8",
    "64:ff9b::c000:8",  # NAT64 of 192.0.0.8
    "64:ff9b::c612:1",  # NAT64 of 198.18.0.1
    "64:ff9b::6440:1",  # NAT64 of 100.64.0.1
    "2002:c000:8::1",  # 6to4 of 192.0.0.8
    "2002:c612:1::",  # 6to4 of 198.18.0.1
    "2600::5efe:c000:8",  # ISATAP to 192.0.0.8
    "fe80::5efe:808:808",  # ISATAP under a link-local prefix: judged by its IPv4 address alone, it passed
    "fd00::5efe:808:808",  # ISATAP under a unique-local prefix: a host on the local network
    "2001:1::1",  # PCP anycast (IPv6)
    "2001:1::2",  # TURN anycast
    "2001:1::3",  # DNS-SD service registration anycast
    "2001:2::1",  # benchmarking
    "2001:3::1",  # AMT
    "2001:4:112::1",  # AS112
    "2001:10::1",  # ORCHID (deprecated)
    "2001:20::1",  # ORCHIDv2: identifiers, not locators
    "2001:30::1",  # drone remote ID
    "2001:db8::1",  # documentation
    "100::1",  # discard-only
    "100:0:0:1::1",  # dummy prefix (RFC 9780), is_global in 3.11
    "::1:0:0:0",  # reserved ::/8 outside the IPv4 spellings: is_global in 3.11
    "1::1",
    "400::1",  # reserved 400::/6
    "4000::1",  # unassigned 4000::/3: is_global in 3.11
    "e000::1",
    "f000::1",
    "fe00::1",
    "2a00:1450::100:5efe:7f00:1",  # ISATAP with the g bit set (RFC 5214's [000000ug00000000]), to 127.0.0.1
    "2a00:1450::300:5efe:a00:1",  # … u and g set, to 10.0.0.1
]
SPECIAL_PURPOSE_PUBLIC = [
    "1.1.1.1",
    "192.0.1.1",  # just past 192.0.0.0/24
    "192.31.196.1",  # AS112 (IPv4): globally reachable
    "198.17.255.255",  # just before 198.18.0.0/15
    "198.20.0.1",  # just past it
    "100.63.255.255",  # just before 100.64.0.0/10
    "100.128.0.1",  # just past it
    "223.255.255.255",  # the last unicast address before multicast
    "2620:fe::fe",
    "2a00:1450:4010:c05::1a",
    "2620:4f:8000::1",  # AS112 (IPv6), outside 2001::/23
]


@pytest.mark.parametrize("address", SPECIAL_PURPOSE_REFUSED)
async def test_special_purpose_addresses_are_refused(address: str) -> None:
    assert is_public(address) is False
    with pytest.raises(HostRefused) as caught:
        await vet_host(address, 25, allow_private=False)
    assert caught.value.code == "private", caught.value


@pytest.mark.parametrize("address", SPECIAL_PURPOSE_PUBLIC)
async def test_public_addresses_next_to_special_ones_are_allowed(address: str) -> None:
    assert is_public(address) is True
    assert [found.address for found in await vet_host(address, 25, allow_private=False)] == [address]


@pytest.mark.parametrize(
    ("address", "public"),
    [("8.8.8.8", True), ("127.0.0.1", False), ("10.1.2.3", False), ("192.168.0.1", False),
     ("169.254.169.254", False), ("100.64.0.1", False), ("::1", False), ("::", False), ("::ffff:127.0.0.1", False),
     ("fd00::1", False), ("2001:4860:4860::8888", True), ("0.0.0.0", False),  # noqa: S104
     ("64:ff9b::7f00:1", False), ("64:ff9b::808:808", True), ("2002:7f00:1::", False), ("2002:808:808::", True),
     ("64:ff9b:1::a00:1", False), ("64:ff9b:1::808:808", False),
     ("::127.0.0.1", False), ("::7f00:1", False), ("::a9fe:a9fe", False), ("::808:808", True),
     ("::ffff:0:7f00:1", False), ("::ffff:0:808:808", True),
     ("fec0::1", False), ("feff::1", False), ("fe80::1", False), ("fc00::1", False),
     ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo to 10.0.0.1
     ("2001:0:808:808::f7f7:f7f7", False),  # Teredo to 8.8.8.8: still not a global prefix
     ("ff0e::1", False), ("224.0.0.1", False)],
)
def test_is_public(address: str, public: bool) -> None:
    assert is_public(address) is public


@pytest.mark.parametrize("host", PRIVATE_SPELLINGS)
async def test_every_spelling_of_a_private_address_is_refused(host: str) -> None:
    with pytest.raises(HostRefused) as caught:
        await vet_host(host, 25, allow_private=False)
    assert caught.value.code == "private", caught.value


@pytest.mark.parametrize("host", PUBLIC_LITERALS)
async def test_public_literals_are_allowed(host: str) -> None:
    vetted = await vet_host(host, 25, allow_private=False)
    assert vetted and all(is_public(found.address) for found in vetted)


async def test_a_name_whose_dns_never_answers_times_out_and_starves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # A DNS server that never answers cannot be set up here (resolv.conf is the machine's), so the
    # blocking lookup is stood in for by one that hangs.
    real = netguard.socket.getaddrinfo
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def hanging(host: str, *args: Any, **kwargs: Any) -> Any:
        if host.endswith(".slow.example"):
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result()
        return real(host, *args, **kwargs)

    monkeypatch.setattr(netguard.socket, "getaddrinfo", hanging)
    monkeypatch.setattr(netguard, "DNS_SECONDS", 0.5)
    try:
        lookups = [asyncio.create_task(vet_host(f"n{n}.slow.example", 25, allow_private=False)) for n in range(40)]
        await asyncio.sleep(0.05)
        # Meanwhile the default thread pool (rendering, password hashing) still answers at once.
        assert await asyncio.wait_for(asyncio.to_thread(lambda: 42), 0.3) == 42
        results = await asyncio.gather(*lookups, return_exceptions=True)
        assert all(isinstance(r, HostRefused) and r.code == "timeout" for r in results), results
        assert "did not answer within 0.5 s" in str(results[0])
    finally:
        release.set()


async def test_private_hosts_are_refused_unless_allowed() -> None:
    for host in ("127.0.0.1", "localhost", "169.254.169.254"):
        with pytest.raises(HostRefused) as caught:
            await vet_host(host, 25, allow_private=False)
        assert caught.value.code == "private"
    allowed = await vet_host("127.0.0.1", 25, allow_private=True)
    assert allowed[0].address == "127.0.0.1"
    assert [a.address for a in await vet_host("[::1]", 25, allow_private=True)] == ["::1"]
    with pytest.raises(HostRefused) as caught:
        await vet_host("no-such-host.invalid", 25, allow_private=True)
    assert caught.value.code == "dns"


class _Listener:
    """A TCP server on 127.0.0.1 that counts connections and hangs up on each."""

    def __init__(self) -> None:
        self.connections = 0
        self.connected = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> _Listener:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self.connected.set()
            writer.close()

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def _connection(host: str, port: int, *, allow_private: bool) -> SmtpConnection:
    return SmtpConnection(SmtpAccount(host, port, "starttls", "u", "p"),
                          ConnectPolicy(allow_private=allow_private, allow_plaintext=False, timeout=2))


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f000001", "localhost.", "::ffff:127.0.0.1",
                                  "[::ffff:7f00:1]", "::7f00:1", "::127.0.0.1", "192.0.0.8"])
async def test_the_worker_never_connects_to_a_private_spelling(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SmtpConnection.open (what the sender worker and verify use) stops before any socket."""
    dialed: list[list[VettedAddress]] = []
    real_open_socket = messenger.open_socket

    async def spy(addresses: list[VettedAddress], port: int, timeout: float) -> Any:
        dialed.append(addresses)
        return await real_open_socket(addresses, port, timeout)

    monkeypatch.setattr(messenger, "open_socket", spy)
    async with _Listener() as listener:
        with pytest.raises(ConnectError) as caught:
            await _connection(host, listener.port, allow_private=False).open()
        assert caught.value.kind == "private", caught.value
        await asyncio.sleep(0)  # let a connection that did arrive be accepted
        assert dialed == [] and listener.connections == 0


async def test_the_listener_sees_a_connection_when_private_hosts_are_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control for the test above: the same spelling, allowed, does reach the listener."""
    async with _Listener() as listener:
        with pytest.raises(ConnectError):  # it hangs up instead of greeting
            await _connection("127.1", listener.port, allow_private=True).open()
        await asyncio.wait_for(listener.connected.wait(), 5)
        assert listener.connections == 1

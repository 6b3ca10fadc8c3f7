"""The SSRF guard: which addresses the workers may connect to."""

from __future__ import annotations

import pytest

from shared.netguard import HostRefused, is_public, vet_host


@pytest.mark.parametrize(
    ("address", "public"),
    [("8.8.8.8", True), ("127.0.0.1", False), ("10.1.2.3", False), ("192.168.0.1", False),
     ("169.254.169.254", False), ("100.64.0.1", False), ("::1", False), ("::ffff:127.0.0.1", False),
     ("fd00::1", False), ("2001:4860:4860::8888", True), ("0.0.0.0", False),  # noqa: S104
     ("64:ff9b::7f00:1", False), ("64:ff9b::808:808", True), ("2002:7f00:1::", False), ("2002:808:808::", True),
     ("64:ff9b:1::a00:1", False)],
)
def test_is_public(address: str, public: bool) -> None:
    assert is_public(address) is public


async def test_private_hosts_are_refused_unless_allowed() -> None:
    for host in ("127.0.0.1", "localhost", "169.254.169.254"):
        with pytest.raises(HostRefused) as caught:
            await vet_host(host, 25, allow_private=False)
        assert caught.value.code == "private"
    allowed = await vet_host("127.0.0.1", 25, allow_private=True)
    assert allowed[0].address == "127.0.0.1"
    with pytest.raises(HostRefused) as caught:
        await vet_host("no-such-host.invalid", 25, allow_private=True)
    assert caught.value.code == "dns"

"""The Message-ID tag and the unsubscribe token, computed faster per message, must stay exactly
what they were: bounce reports of mail already sent carry the tag, and links already sent carry
the token. Each is checked here against the textbook way of computing it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import random
import uuid

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared import suppressions
from shared.unsubscribe import Target, Unsubscriber, _derived, _Mac, _tag_text, message_tag, read_token


def test_the_tag_text_is_base32_for_any_digest() -> None:
    rng = random.Random(13)
    digests = [bytes(10), b"\xff" * 10, b"\x80" + bytes(9), bytes(9) + b"\x01"]
    digests += [rng.randbytes(32) for _ in range(20_000)]
    for digest in digests:
        assert _tag_text(digest) == base64.b32encode(digest[:10]).decode().lower(), digest.hex()


def test_the_precomputed_mac_is_hmac_sha256() -> None:
    rng = random.Random(7)
    for size in (0, 1, 31, 32, 33, 63, 64, 65, 200):
        key = rng.randbytes(size)
        mac = _Mac(key)
        for length in (0, 1, 55, 56, 64, 100, 1000):
            data = rng.randbytes(length)
            assert mac.digest(data) == hmac.new(key, data, hashlib.sha256).digest(), (size, length)


def the_old_tag(key: bytes, campaign: uuid.UUID, position: int, user_id: int, address_key: str) -> str:
    data = campaign.bytes + position.to_bytes(4, "big") + user_id.to_bytes(8, "big") + address_key.encode()
    digest = hmac.new(_derived(key, b"message tag"), data, hashlib.sha256).digest()[:10]
    return base64.b32encode(digest).decode().lower()


def the_old_token(key: bytes, campaign: uuid.UUID, position: int, user_id: int, address: str) -> str:
    plain = campaign.bytes + position.to_bytes(4, "big") + user_id.to_bytes(8, "big") + address.encode()
    nonce = hmac.new(_derived(key, b"unsubscribe nonce"), plain, hashlib.sha256).digest()[:12]
    sealed = nonce + AESGCM(_derived(key, b"unsubscribe token")).encrypt(nonce, plain, None)
    return "2." + base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def test_tags_and_links_are_the_ones_sent_before() -> None:
    rng = random.Random(11)
    addresses = ["ann@example.com", "Ann.Lee+news@Gmail.com", "мария@почта.рф", "x@y.z", "o'brien@example.ie"]
    for round_ in range(300):
        key = os.urandom(rng.choice((16, 32, 64)))
        campaign, user_id = uuid.UUID(int=rng.getrandbits(128)), rng.randrange(1, 2**40)
        links = Unsubscriber(key, "https://mail.example.org", campaign, user_id)
        position = rng.randrange(0, 2**31)
        address = rng.choice(addresses) if round_ % 2 else f"p{rng.getrandbits(40)}@example.com"
        address_key = suppressions.fast_key(address)
        tag = links.message_tag(position, address)
        assert tag == the_old_tag(key, campaign, position, user_id, address_key)
        assert tag == message_tag(key, campaign, position, user_id, address_key)  # what bounce matching computes
        token = links.token(position, address)
        assert token == the_old_token(key, campaign, position, user_id, address)
        assert links.url(position, address) == f"https://mail.example.org/u/{token}"
        assert read_token(key, token) == Target(campaign, position, user_id, address)

"""Signed ids in the mail we send: one-click unsubscribe links (RFC 8058) and the keyed tag in
each Message-ID that a bounce report must carry back (shared/bounces/record.py checks it).

Both name the recipient itself — the account and the address, not only the campaign's row — so
an unsubscribe link and a bounce still act after the campaign (and its sender) are deleted, and
always on the right account's suppression list. The link's token is sealed (AES-GCM): it carries
the address, and links pass through proxies, scanners and logs. Links signed before that (campaign
and position only, HMAC) keep working while their campaign exists.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared import suppressions
from shared.db import Conn
from shared.settings import Settings, SettingsError

_SIGNATURE_BYTES = 16
_SEALED = "2"  # the first part of a sealed token, "2.<nonce+ciphertext>"; an old one's is 27 characters
_NONCE_BYTES = 12
_MAX_TOKEN_CHARS = 1200  # an address is at most 254 octets (320 with SMTPUTF8): this is ample
_TAG_BYTES = 10  # 80 bits in the Message-ID: forging one is 2**80 guesses, one report each


def signing_key(settings: Settings) -> bytes:
    """SENDPY_SIGNING_KEY when set (ECS injects it from Secrets Manager), else the secret that
    SENDPY_SIGNING_KEY_SECRET_ARN names (the API function; read once per container), else a key
    derived from the local master key (the local stack)."""
    if settings.signing_key:
        return settings.signing_key.encode()
    if settings.signing_key_secret_arn:
        return _secret_string(settings.signing_key_secret_arn, settings.aws_region).encode()
    if settings.local_master_key:
        return hmac.new(settings.local_master_key.encode(), b"sendpy unsubscribe links", hashlib.sha256).digest()
    raise SettingsError("SENDPY_SIGNING_KEY (a long random string) or SENDPY_SIGNING_KEY_SECRET_ARN is required "
                        "when no local master key is set")


@lru_cache(maxsize=4)
def _secret_string(secret_arn: str, region: str) -> str:
    """The secret's current value, asked for once per process (a blocking call of a few ms, on
    the first unsubscribe link a Lambda container signs or checks)."""
    import boto3

    client: Any = boto3.client("secretsmanager", region_name=region)
    value = client.get_secret_value(SecretId=secret_arn).get("SecretString")
    if not isinstance(value, str) or not value.strip():
        raise SettingsError("the secret SENDPY_SIGNING_KEY_SECRET_ARN names holds no text")
    return value.strip()


@lru_cache(maxsize=16)
def _derived(key: bytes, purpose: bytes) -> bytes:
    # One secret, separate keys per use: a tag can never be replayed as a link or the reverse.
    return hmac.new(key, b"sendpy " + purpose, hashlib.sha256).digest()


@lru_cache(maxsize=4)
def _cipher(key: bytes) -> AESGCM:
    return AESGCM(_derived(key, b"unsubscribe token"))


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_URLSAFE).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def message_tag(key: bytes, campaign_id: uuid.UUID, position: int, user_id: int, address_key: str) -> str:
    """The keyed tag of one message: campaign, position, account and the recipient's
    `suppression_key`, so a report can only name the recipient the message was really sent to."""
    data = b"".join([campaign_id.bytes, position.to_bytes(4, "big"), user_id.to_bytes(8, "big"),
                     address_key.encode()])
    return _tag_text(hmac.digest(_derived(key, b"message tag"), data, "sha256"))


# base32 (RFC 4648) in lower case, two symbols for each 10 bits: b32encode is pure Python in 3.11
# and took 8.5 µs a message. The text must stay exactly b32encode's: mail already sent carries it.
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_SYMBOL_PAIRS = [first + second for first in _BASE32 for second in _BASE32]


def _tag_text(digest: bytes) -> str:
    """`base64.b32encode(digest[:10]).decode().lower()`: 80 bits, 16 symbols, no padding."""
    bits = int.from_bytes(digest[:_TAG_BYTES], "big")
    pairs = _SYMBOL_PAIRS
    return (pairs[bits >> 70] + pairs[bits >> 60 & 1023] + pairs[bits >> 50 & 1023] + pairs[bits >> 40 & 1023]
            + pairs[bits >> 30 & 1023] + pairs[bits >> 20 & 1023] + pairs[bits >> 10 & 1023] + pairs[bits & 1023])


class _Mac:
    """HMAC-SHA256 under one key, the key's two padded blocks hashed once: each message then
    costs a copy and an update of each (1.1 µs; hmac.digest sets OpenSSL's HMAC up anew, 2.7 µs)."""

    def __init__(self, key: bytes) -> None:
        block = key.ljust(64, b"\0") if len(key) <= 64 else hashlib.sha256(key).digest().ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))

    def digest(self, data: bytes) -> bytes:
        inner, outer = self._inner.copy(), self._outer.copy()
        inner.update(data)
        outer.update(inner.digest())
        return outer.digest()


@dataclass(frozen=True)
class Unsubscriber:
    """Makes the link and the Message-ID tag for each recipient of one campaign; compiled once
    per campaign."""

    key: bytes
    base_url: str
    campaign_id: uuid.UUID
    user_id: int
    _campaign: bytes = field(init=False, repr=False, compare=False)
    _user: bytes = field(init=False, repr=False, compare=False)
    _nonce_mac: _Mac = field(init=False, repr=False, compare=False)
    _tag_mac: _Mac = field(init=False, repr=False, compare=False)
    _sealer: AESGCM = field(init=False, repr=False, compare=False)
    _link_start: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # What every recipient's ids share, worked out once per campaign rather than per message.
        object.__setattr__(self, "_campaign", self.campaign_id.bytes)
        object.__setattr__(self, "_user", self.user_id.to_bytes(8, "big"))
        object.__setattr__(self, "_nonce_mac", _Mac(_derived(self.key, b"unsubscribe nonce")))
        object.__setattr__(self, "_tag_mac", _Mac(_derived(self.key, b"message tag")))
        object.__setattr__(self, "_sealer", _cipher(self.key))
        object.__setattr__(self, "_link_start", f"{self.base_url}/u/{_SEALED}.")

    def token(self, position: int, address: str) -> str:
        return f"{_SEALED}.{self._sealed(position, address)}"

    def _sealed(self, position: int, address: str) -> str:
        plain = b"".join([self._campaign, position.to_bytes(4, "big"), self._user, address.encode()])
        # A synthetic nonce (a MAC of the content): the same recipient always gets the same link,
        # and two different contents never share a nonce.
        nonce = self._nonce_mac.digest(plain)[:_NONCE_BYTES]
        return _b64(nonce + self._sealer.encrypt(nonce, plain, None))

    def url(self, position: int, address: str) -> str:
        return self._link_start + self._sealed(position, address)

    def message_tag(self, position: int, address: str) -> str:
        data = b"".join([self._campaign, position.to_bytes(4, "big"), self._user,
                         suppressions.fast_key(address).encode()])
        return _tag_text(self._tag_mac.digest(data))


@dataclass(frozen=True)
class Target:
    """Whom a genuine link unsubscribes. Old links name only the campaign's row (user_id and
    email None): they work while that row exists."""

    campaign_id: uuid.UUID
    position: int
    user_id: int | None = None
    email: str | None = None


def read_token(key: bytes, token: str) -> Target | None:
    """The target of a genuine token (sealed, or signed the old way), else None."""
    if len(token) > _MAX_TOKEN_CHARS:
        return None
    first, _, rest = token.partition(".")
    try:
        if first == _SEALED:
            return _read_sealed(key, _unb64(rest))
        payload, signature = _unb64(first), _unb64(rest)
    except (ValueError, TypeError):
        return None
    if len(payload) != 20:
        return None
    expected = hmac.new(key, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    if not hmac.compare_digest(expected, signature):
        return None
    return Target(uuid.UUID(bytes=payload[:16]), int.from_bytes(payload[16:], "big"))


def _read_sealed(key: bytes, sealed: bytes) -> Target | None:
    if len(sealed) < _NONCE_BYTES + 28 + 16:
        return None
    try:
        plain = _cipher(key).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], None)
        email = plain[28:].decode("utf-8")
    except (InvalidTag, UnicodeDecodeError):
        return None
    return Target(uuid.UUID(bytes=plain[:16]), int.from_bytes(plain[16:20], "big"),
                  int.from_bytes(plain[20:28], "big"), email)


async def unsubscribe(conn: Conn, target: Target) -> str | None:
    """Put the link's recipient on its account's suppression list; the address, None if unknown.

    A sealed link needs nothing but its account: the campaign and its sender, when still there,
    only say where the entry came from."""
    if target.user_id is None or target.email is None:
        return await suppressions.unsubscribe(conn, target.campaign_id, target.position)
    if await conn.fetchval("SELECT 1 FROM users WHERE id = $1", target.user_id) is None:
        return None  # the account itself is gone, and its list with it
    sender_email = await conn.fetchval(
        "SELECT s.from_email FROM campaigns c JOIN senders s ON s.id = c.sender_id WHERE c.id = $1 AND c.user_id = $2",
        target.campaign_id, target.user_id)
    await suppressions.add(conn, target.user_id, [target.email], "unsubscribed", campaign_id=target.campaign_id,
                           sender_email=sender_email)
    return target.email

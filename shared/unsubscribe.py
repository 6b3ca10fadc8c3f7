"""Signed one-click unsubscribe links (RFC 8058); shared/suppressions.py records the unsubscribe."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from shared.settings import Settings, SettingsError

_SIGNATURE_BYTES = 16


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


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Unsubscriber:
    """Makes the link for one recipient of one campaign; compiled once per campaign."""

    key: bytes
    base_url: str
    campaign_id: uuid.UUID

    def token(self, position: int) -> str:
        payload = self.campaign_id.bytes + position.to_bytes(4, "big")
        signature = hmac.new(self.key, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
        return f"{_b64(payload)}.{_b64(signature)}"

    def url(self, position: int) -> str:
        return f"{self.base_url}/u/{self.token(position)}"


def read_token(key: bytes, token: str) -> tuple[uuid.UUID, int] | None:
    """(campaign id, recipient position) of a genuine token, else None."""
    payload_text, _, signature_text = token.partition(".")
    try:
        payload, signature = _unb64(payload_text), _unb64(signature_text)
    except (ValueError, TypeError):
        return None
    if len(payload) != 20:
        return None
    expected = hmac.new(key, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    if not hmac.compare_digest(expected, signature):
        return None
    return uuid.UUID(bytes=payload[:16]), int.from_bytes(payload[16:], "big")

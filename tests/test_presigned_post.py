"""The presigned POST policy that browsers upload contact files with (shared/storage.py).

moto accepts any presigned POST without checking its policy, so the upload tests never exercise
the size, type, key and expiry conditions real S3 enforces. Here the signed policy itself is
decoded and checked, and its SigV4 signature recomputed, so a change that loosened it fails.
"""

from __future__ import annotations

import base64
import calendar
import dataclasses
import hashlib
import hmac
import json
import time
from typing import Any

import asyncpg
import boto3
import httpx
import pytest

from shared.settings import Settings, load_settings
from shared.storage import UploadStore
from tests.conftest import new_api_key

ACCESS_KEY = "AKIDPOLICYTEST"
SECRET_KEY = "policy-test-secret"  # made up, only to recompute signatures
REGION = "eu-central-1"
BUCKET = "uploads-policy-test"


@pytest.fixture
def store_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings with credentials we know, so the signature can be recomputed; nothing is contacted."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it caches the credentials it first found
    return dataclasses.replace(load_settings(), s3_bucket_uploads=BUCKET, aws_region=REGION,
                               s3_endpoint_url="http://127.0.0.1:9")


def decode_policy(form: dict[str, Any]) -> dict[str, Any]:
    policy: dict[str, Any] = json.loads(base64.b64decode(form["fields"]["policy"], validate=True))
    return policy


def expiration_epoch(policy: dict[str, Any]) -> int:
    return calendar.timegm(time.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ"))


def sigv4_signature(secret: str, credential: str, policy_b64: str) -> str:
    """What S3 computes for a POST policy: HMAC-SHA256 chain over the credential scope."""
    _, date, region, service, terminal = credential.split("/")
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, terminal):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, policy_b64.encode(), hashlib.sha256).hexdigest()


def check_form(form: dict[str, Any], *, bucket: str, key: str, max_bytes: int, expires: int, asked_at: float,
               secret: str, access_key: str, region: str) -> dict[str, Any]:
    """Every condition the browser's form is held to, and the signature over them."""
    fields = form["fields"]
    policy = decode_policy(form)
    conditions = policy["conditions"]

    # Nothing lets the browser pick its own key or any other value: no starts-with at all.
    assert not [c for c in conditions if isinstance(c, list) and c[0] != "content-length-range"], conditions
    exact = {name: value for c in conditions if isinstance(c, dict) for name, value in c.items()}
    assert len(exact) == sum(len(c) for c in conditions if isinstance(c, dict)), "a field has two conditions"

    assert exact["bucket"] == bucket
    assert bucket in form["url"]
    assert exact["key"] == key and fields["key"] == key
    assert "${filename}" not in key

    ranges = [c for c in conditions if isinstance(c, list)]
    assert ranges == [["content-length-range", 1, max_bytes]]  # empty files and big files are refused

    assert exact["Content-Type"] == "text/csv" and fields["Content-Type"] == "text/csv"

    expiration = expiration_epoch(policy)
    # boto3 adds `expires` to its own clock, to the second: minutes, not days.
    assert int(asked_at) + expires - 2 <= expiration <= time.time() + expires + 2, (policy["expiration"], expires)

    # Signature version 4, scoped to this key, region and S3, signing exactly this policy.
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    credential = fields["x-amz-credential"]
    assert credential.startswith(f"{access_key}/") and credential.endswith(f"/{region}/s3/aws4_request")
    assert credential.split("/")[1] == fields["x-amz-date"][:8]
    assert "AWSAccessKeyId" not in fields and "signature" not in fields  # not the old SigV2 form
    assert fields["x-amz-signature"] == sigv4_signature(secret, credential, fields["policy"])

    # S3 refuses a form field that no condition covers; every one here is pinned exactly.
    for name, value in fields.items():
        if name not in ("policy", "x-amz-signature"):
            assert exact.get(name) == value, (name, value, exact)
    assert set(exact) == {"bucket", "key", "Content-Type", "x-amz-algorithm", "x-amz-credential", "x-amz-date"}
    return policy


def test_policy_pins_bucket_key_size_type_and_expiry(store_settings: Settings) -> None:
    key = "uploads/42/0f8fad5b-d9cb-469f-a165-70867728950e.csv"
    asked_at = time.time()
    form = UploadStore(store_settings).presigned_post(key, 5_000_000)
    check_form(form, bucket=BUCKET, key=key, max_bytes=5_000_000, expires=900, asked_at=asked_at,
               secret=SECRET_KEY, access_key=ACCESS_KEY, region=REGION)


def test_size_and_expiry_follow_the_arguments(store_settings: Settings) -> None:
    key = "uploads/7/x.csv"
    asked_at = time.time()
    form = UploadStore(store_settings).presigned_post(key, 1024, expires=60)
    check_form(form, bucket=BUCKET, key=key, max_bytes=1024, expires=60, asked_at=asked_at,
               secret=SECRET_KEY, access_key=ACCESS_KEY, region=REGION)


def test_a_tampered_policy_no_longer_matches_its_signature(store_settings: Settings) -> None:
    form = UploadStore(store_settings).presigned_post("uploads/1/a.csv", 1024)
    policy = decode_policy(form)
    policy["conditions"][0] = ["content-length-range", 1, 10**12]
    tampered = base64.b64encode(json.dumps(policy).encode()).decode()
    fields = form["fields"]
    assert fields["x-amz-signature"] != sigv4_signature(SECRET_KEY, fields["x-amz-credential"], tampered)


async def test_the_api_hands_out_a_form_for_the_callers_own_key_only(
    api: httpx.AsyncClient, api_key: str, db: asyncpg.Pool, app_env: dict[str, str]
) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    asked_at = time.time()
    created = await api.post("/v1/uploads", json={"filename": "../../other/контакты.csv"}, headers=auth)
    assert created.status_code == 201, created.text
    body = created.json()
    upload_id = body["upload"]["id"]
    user_id, stored_key = await db.fetchrow("SELECT user_id, s3_key FROM uploads WHERE id = $1", upload_id)
    key = f"uploads/{user_id}/{upload_id}.csv"
    assert stored_key == key  # the object later read is the one the form allows writing
    max_bytes = int(app_env["SENDPY_MAX_UPLOAD_BYTES"])
    assert body["max_bytes"] == max_bytes
    check_form(body["post"], bucket=app_env["SENDPY_S3_BUCKET_UPLOADS"], key=key, max_bytes=max_bytes,
               expires=900, asked_at=asked_at, secret=app_env["AWS_SECRET_ACCESS_KEY"],
               access_key=app_env["AWS_ACCESS_KEY_ID"], region=app_env["AWS_REGION"])

    # Another user's form is for another prefix: neither can write where the other reads.
    other = {"Authorization": f"Bearer {await new_api_key(db)}"}
    theirs = (await api.post("/v1/uploads", json={}, headers=other)).json()
    their_key = decode_key(theirs["post"])
    assert not their_key.startswith(f"uploads/{user_id}/")
    assert their_key == f"uploads/{await owner_of(db, theirs['upload']['id'])}/{theirs['upload']['id']}.csv"


async def owner_of(db: asyncpg.Pool, upload_id: str) -> int:
    owner: int = await db.fetchval("SELECT user_id FROM uploads WHERE id = $1", upload_id)
    return owner


def decode_key(form: dict[str, Any]) -> str:
    keys = [c["key"] for c in decode_policy(form)["conditions"] if isinstance(c, dict) and "key" in c]
    assert len(keys) == 1
    return str(keys[0])

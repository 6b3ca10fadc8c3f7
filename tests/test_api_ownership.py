"""What one user owns, no other user can see, change or use, and one request is done once.

User A builds a sender (with a suppression), a contact file and a draft; user B, with a key of
their own, tries every route on A's ids and tries to attach A's sender and file to B's drafts.
Each attempt must be a 404 (or 400 for a reference in a body) and leave A's rows as they were.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest

from sendpy.devstack.smtp_sink import SmtpSink
from tests.conftest import new_api_key
from tests.helpers import make_sender, make_upload

CONTACTS = b"email,name\nfirst@example.com,First\nsecond@example.com,Second\n"
KEPT = "kept@example.org"  # on A's suppression list


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture
async def other(db: asyncpg.Pool) -> dict[str, str]:
    return {"Authorization": f"Bearer {await new_api_key(db)}"}


async def _user_of(db: asyncpg.Pool, headers: dict[str, str]) -> int:
    from shared.accounts import user_for_api_key

    async with db.acquire() as conn:
        user_id = await user_for_api_key(conn, headers["Authorization"].removeprefix("Bearer "))
    assert user_id is not None
    return user_id


async def _campaigns_of(db: asyncpg.Pool, user_id: int) -> list[dict[str, Any]]:
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM campaigns WHERE user_id = $1 ORDER BY created_at", user_id)
    return [dict(r) for r in rows]


async def _snapshot(db: asyncpg.Pool, sender_id: int, upload_id: str, campaign_id: str) -> dict[str, Any]:
    """A's rows as stored, to compare before and after B's attempts."""
    async with db.acquire() as conn:
        return {
            "sender": dict(await conn.fetchrow("SELECT * FROM senders WHERE id = $1", sender_id) or {}),
            "upload": dict(await conn.fetchrow("SELECT * FROM uploads WHERE id = $1", uuid.UUID(upload_id)) or {}),
            "campaign": dict(await conn.fetchrow("SELECT * FROM campaigns WHERE id = $1",
                                                 uuid.UUID(campaign_id)) or {}),
            "suppressions": [dict(r) for r in await conn.fetch(
                "SELECT * FROM suppressed WHERE user_id = (SELECT user_id FROM senders WHERE id = $1)"
                " ORDER BY address", sender_id)],
            "recipients": await conn.fetchval("SELECT count(*) FROM recipients WHERE campaign_id = $1",
                                              uuid.UUID(campaign_id)),
        }


@pytest.fixture
async def owned(api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink) -> dict[str, Any]:
    """A's sender (verified, one suppression), ready contact file and draft using both."""
    sender = await make_sender(api, auth, clean_sink)
    added = await api.post("/v1/suppressions", json={"emails": [KEPT]}, headers=auth)
    assert added.status_code == 201, added.text
    upload = await make_upload(api, auth, CONTACTS)
    draft = await api.post("/v1/campaigns", headers=auth, json={
        "name": "A's", "sender_id": sender["id"], "upload_id": upload["id"], "subject": "Hi {{ name }}",
        "html_body": "<p>Hello {{ name }}</p>"})
    assert draft.status_code == 201, draft.text
    clean_sink.clear()  # the verification's session is not a message
    return {"sender_id": sender["id"], "upload_id": upload["id"], "campaign_id": draft.json()["id"]}


def _error(answer: httpx.Response) -> tuple[int, str, str | None]:
    assert "error" in answer.json(), (answer.status_code, answer.text)
    error = answer.json()["error"]
    return answer.status_code, error["code"], error.get("field")


async def test_an_idempotency_key_reused_with_another_body_is_refused_and_nothing_is_made_twice(
    api: httpx.AsyncClient, auth: dict[str, str], other: dict[str, str], owned: dict[str, Any], db: asyncpg.Pool
) -> None:
    user_id = await _user_of(db, auth)
    before = len(await _campaigns_of(db, user_id))
    body = {"name": "Once", "sender_id": owned["sender_id"], "upload_id": owned["upload_id"],
            "subject": "Once", "html_body": "<p>once</p>"}
    key = {"Idempotency-Key": f"create-{uuid.uuid4()}"}

    first = await api.post("/v1/campaigns", json=body, headers={**auth, **key})
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers

    changed = await api.post("/v1/campaigns", json={**body, "subject": "Twice"}, headers={**auth, **key})
    assert _error(changed) == (422, "idempotency_key_reused", "Idempotency-Key")

    replay = await api.post("/v1/campaigns", json=body, headers={**auth, **key})
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()

    # Keys belong to a user: B's identical request is B's own, and A's sender and file are not B's.
    borrowed = await api.post("/v1/campaigns", json=body, headers={**other, **key})
    assert _error(borrowed) == (400, "unknown_sender", "sender_id")
    assert "idempotent-replayed" not in borrowed.headers

    mine = await _campaigns_of(db, user_id)
    assert len(mine) == before + 1
    assert [(str(c["id"]), c["subject"]) for c in mine if c["name"] == "Once"] == [(first.json()["id"], "Once")]
    assert await _campaigns_of(db, await _user_of(db, other)) == []


async def test_concurrent_idempotent_requests_never_exhaust_the_pool(
    api: httpx.AsyncClient, auth: dict[str, str], other: dict[str, str], db: asyncpg.Pool
) -> None:
    # Found by attacking the dev stack: each request held a pooled connection (an advisory-lock
    # transaction) while its work took a second one; five at once took the whole pool and froze
    # the API for everyone, for good.
    async def create(key: str) -> httpx.Response:
        return await api.post("/v1/campaigns", json={"name": "n"}, headers={**auth, "Idempotency-Key": key})

    answers = await asyncio.wait_for(asyncio.gather(*(create(f"k-{uuid.uuid4()}") for _ in range(12))), 30)
    assert [a.status_code for a in answers] == [201] * 12
    same = f"same-{uuid.uuid4()}"
    repeated = await asyncio.wait_for(asyncio.gather(*(create(same) for _ in range(6))), 30)
    assert {a.status_code for a in repeated} <= {201, 409}, [a.text for a in repeated]
    made = [a.json()["id"] for a in repeated if a.status_code == 201]
    assert len(set(made)) == 1  # one campaign, whatever the interleaving
    assert (await api.get("/v1/me", headers=other)).status_code == 200  # everyone else still served


async def test_another_users_sender_and_file_cannot_be_attached(
    new_client: Callable[[], httpx.AsyncClient], other: dict[str, str], owned: dict[str, Any], db: asyncpg.Pool
) -> None:
    b_user = await _user_of(db, other)
    async with new_client() as b_api:
        draft = await b_api.post("/v1/campaigns", json={"name": "B's", "subject": "B"}, headers=other)
        assert draft.status_code == 201, draft.text
        b_draft = draft.json()["id"]
        stored = await _campaigns_of(db, b_user)

        for extra, code, field in (({"sender_id": owned["sender_id"]}, "unknown_sender", "sender_id"),
                                   ({"upload_id": owned["upload_id"]}, "unknown_upload", "upload_id")):
            made = await b_api.post("/v1/campaigns", json={"name": "stolen", "subject": "S", **extra}, headers=other)
            assert _error(made) == (400, code, field), made.text
            edited = await b_api.patch(f"/v1/campaigns/{b_draft}", json={"subject": "changed", **extra},
                                       headers=other)
            assert _error(edited) == (400, code, field), edited.text

        assert await _campaigns_of(db, b_user) == stored  # no new draft, nothing of the edit stored
        shown = (await b_api.get(f"/v1/campaigns/{b_draft}", headers=other)).json()
        assert (shown["subject"], shown["sender_id"], shown["upload_id"]) == ("B", None, None)


async def test_another_users_ids_are_not_found_and_nothing_of_theirs_changes(
    api: httpx.AsyncClient, new_client: Callable[[], httpx.AsyncClient], auth: dict[str, str],
    other: dict[str, str], owned: dict[str, Any], clean_sink: SmtpSink, db: asyncpg.Pool
) -> None:
    cid, sid, uid = owned["campaign_id"], owned["sender_id"], owned["upload_id"]
    before = await _snapshot(db, sid, uid, cid)
    attempts: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/v1/campaigns/{cid}", None),
        ("PATCH", f"/v1/campaigns/{cid}", {"subject": "hijacked"}),
        ("POST", f"/v1/campaigns/{cid}/preview", {"row": 1}),
        ("POST", f"/v1/campaigns/{cid}/test", {"email": "b@example.org"}),
        ("POST", f"/v1/campaigns/{cid}/start", None),
        ("POST", f"/v1/campaigns/{cid}/pause", None),
        ("POST", f"/v1/campaigns/{cid}/resume", None),
        ("POST", f"/v1/campaigns/{cid}/cancel", None),
        ("GET", f"/v1/campaigns/{cid}/recipients", None),
        ("GET", f"/v1/campaigns/{cid}/export.csv", None),
        ("DELETE", f"/v1/campaigns/{cid}", None),
        ("GET", f"/v1/senders/{sid}", None),
        ("PATCH", f"/v1/senders/{sid}", {"from_name": "hijacked"}),
        ("POST", f"/v1/senders/{sid}/verify", None),
        ("DELETE", f"/v1/suppressions/{KEPT}", None),  # B's own list has no such address
        ("GET", f"/v1/uploads/{uid}", None),
        ("PATCH", f"/v1/uploads/{uid}", {"has_header": False}),
        ("POST", f"/v1/uploads/{uid}/complete", None),
        # After the campaign's DELETE: were that let through, these would no longer be "in use".
        ("DELETE", f"/v1/senders/{sid}", None),
        ("DELETE", f"/v1/uploads/{uid}", None),
    ]
    async with new_client() as b_api:
        for method, path, body in attempts:
            answer = await b_api.request(method, path, json=body, headers=other)
            assert answer.status_code == 404, (method, path, answer.status_code, answer.text)
            assert answer.json()["error"]["code"] == "not_found", (method, path, answer.text)
        for listing in ("/v1/campaigns", "/v1/senders", "/v1/uploads"):
            assert (await b_api.get(listing, headers=other)).json()["items"] == [], listing

    assert await _snapshot(db, sid, uid, cid) == before
    assert clean_sink.messages == []  # no test message went out through A's account
    # A still has all of it, the contact file in S3 included.
    preview = await api.post(f"/v1/campaigns/{cid}/preview", json={"row": 2}, headers=auth)
    assert preview.status_code == 200 and preview.json()["email"] == "second@example.com", preview.text
    listed = (await api.get("/v1/suppressions", headers=auth)).json()["items"]
    assert [item["email"] for item in listed] == [KEPT]
    async with new_client() as b_api:  # and B's own list is B's alone
        assert (await b_api.get("/v1/suppressions", headers=other)).json()["items"] == []

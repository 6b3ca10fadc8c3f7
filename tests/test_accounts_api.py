"""Accounts, sessions with CSRF, log-in throttling and API keys, against real Postgres."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
from starlette.applications import Starlette

from shared import accounts
from tests.fault_report import record_user


def unique_email() -> str:
    return f"u-{uuid.uuid4().hex[:10]}@example.com"


async def register(api: httpx.AsyncClient, email: str, password: str = "correct horse 1") -> httpx.Response:
    answer = await api.post("/v1/auth/register", json={"email": email, "password": password})
    assert answer.status_code == 201, answer.text
    return answer


async def test_register_sets_a_session_and_csrf_guards_unsafe_requests(api: httpx.AsyncClient) -> None:
    email = unique_email()
    answer = await register(api, email)
    session_header = answer.headers.get_list("set-cookie")
    assert any("sendpy_session=" in c and "HttpOnly" in c and "SameSite=lax" in c for c in session_header)
    csrf = answer.json()["csrf_token"]
    me = await api.get("/v1/me")
    assert me.status_code == 200 and me.json()["email"] == email
    refused = await api.post("/v1/api-keys", json={"name": "x"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf"
    wrong = await api.post("/v1/api-keys", json={"name": "x"}, headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    made = await api.post("/v1/api-keys", json={"name": "x"}, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201
    stolen = dict(api.cookies)
    out = await api.post("/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert out.status_code == 204
    assert (await api.get("/v1/me")).status_code == 401
    api.cookies.update(stolen)  # the old cookie, replayed, no longer opens anything
    assert (await api.get("/v1/me")).status_code == 401


async def test_duplicate_and_weak_registrations_are_refused(api: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(api, email)
    again = await api.post("/v1/auth/register", json={"email": email.upper(), "password": "another pass"})
    assert again.status_code == 400 and again.json()["error"]["code"] == "email_taken"
    short = await api.post("/v1/auth/register", json={"email": unique_email(), "password": "short"})
    assert short.status_code == 400 and short.json()["error"]["code"] == "password_short"
    bad = await api.post("/v1/auth/register", json={"email": "not-an-address", "password": "long enough"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "email"


async def test_login_is_throttled_after_repeated_failures(api: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(api, email)
    for _ in range(5):
        wrong = await api.post("/v1/auth/login", json={"email": email, "password": "wrong password"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "bad_credentials"
    blocked = await api.post("/v1/auth/login", json={"email": email, "password": "correct horse 1"})
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    ru = await api.post("/v1/auth/login", json={"email": email, "password": "x"}, headers={"Accept-Language": "ru"})
    assert "Слишком много" in ru.json()["error"]["message"]


async def test_unknown_user_and_wrong_password_look_the_same(api: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(api, email)
    wrong = await api.post("/v1/auth/login", json={"email": email, "password": "wrong password"})
    unknown = await api.post("/v1/auth/login", json={"email": unique_email(), "password": "wrong password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_change_password_ends_other_sessions(api: httpx.AsyncClient, new_client) -> None:
    email = unique_email()
    first = await register(api, email)
    async with new_client() as other_browser:
        second = await other_browser.post("/v1/auth/login", json={"email": email, "password": "correct horse 1"})
        assert second.status_code == 200
        csrf = first.json()["csrf_token"]
        bad = await api.post("/v1/auth/password",
                             json={"current_password": "nope", "new_password": "new password 2"},
                             headers={"X-CSRF-Token": csrf})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "wrong_password"
        done = await api.post("/v1/auth/password",
                              json={"current_password": "correct horse 1", "new_password": "new password 2"},
                              headers={"X-CSRF-Token": csrf})
        assert done.status_code == 204
        assert (await api.get("/v1/me")).status_code == 200
        assert (await other_browser.get("/v1/me")).status_code == 401
    old = await api.post("/v1/auth/login", json={"email": email, "password": "correct horse 1"})
    assert old.status_code == 401
    new = await api.post("/v1/auth/login", json={"email": email, "password": "new password 2"})
    assert new.status_code == 200


async def test_api_keys_listed_by_prefix_and_revocable(api: httpx.AsyncClient, api_key: str) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    made = await api.post("/v1/api-keys", json={"name": "script"}, headers=auth)
    assert made.status_code == 201
    token = made.json()["key"]
    listed = (await api.get("/v1/api-keys", headers=auth)).json()["items"]
    assert any(item["name"] == "script" for item in listed)
    assert all("key" not in item and token not in str(item) for item in listed)
    assert token.startswith(next(i["prefix"] for i in listed if i["id"] == made.json()["id"]))
    new_auth = {"Authorization": f"Bearer {token}"}
    assert (await api.get("/v1/me", headers=new_auth)).status_code == 200
    assert (await api.delete(f"/v1/api-keys/{made.json()['id']}", headers=auth)).status_code == 204
    assert (await api.get("/v1/me", headers=new_auth)).status_code == 401
    assert (await api.delete(f"/v1/api-keys/{made.json()['id']}", headers=auth)).status_code == 404


async def test_another_users_key_cannot_be_revoked(api: httpx.AsyncClient, api_key: str, db) -> None:
    from tests.conftest import new_api_key

    auth = {"Authorization": f"Bearer {api_key}"}
    made = (await api.post("/v1/api-keys", json={"name": "mine"}, headers=auth)).json()
    other = {"Authorization": f"Bearer {await new_api_key(db)}"}
    assert (await api.delete(f"/v1/api-keys/{made['id']}", headers=other)).status_code == 404
    assert all(k["id"] != made["id"] for k in (await api.get("/v1/api-keys", headers=other)).json()["items"])
    assert (await api.get("/v1/me", headers={"Authorization": f"Bearer {made['key']}"})).status_code == 200


async def test_log_in_only_accepts_json_so_a_cross_site_form_cannot_log_you_in(api: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(api, email)
    forged = await api.post("/v1/auth/login", content=f'{{"email": "{email}", "password": "correct horse 1"}}',
                            headers={"Content-Type": "text/plain"})
    assert forged.status_code == 415 and forged.json()["error"]["code"] == "json_required"
    assert "sendpy_session" not in forged.headers.get("set-cookie", "")


def test_forwarded_addresses_are_believed_only_from_trusted_hops(monkeypatch) -> None:
    from starlette.requests import Request

    from functions.parsing import client_address
    from shared.settings import get_settings

    def request(forwarded: str | None) -> Request:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        return Request({"type": "http", "headers": headers, "client": ("198.51.100.9", 443)})

    get_settings.cache_clear()
    monkeypatch.setenv("SENDPY_TRUSTED_PROXY_HOPS", "0")
    assert client_address(request("1.2.3.4")) == "198.51.100.9"  # no proxy trusted: the socket's peer
    get_settings.cache_clear()
    monkeypatch.setenv("SENDPY_TRUSTED_PROXY_HOPS", "1")
    assert client_address(request("6.6.6.6, 203.0.113.5")) == "203.0.113.5"  # a forged first entry is ignored
    assert client_address(request(None)) == "198.51.100.9"
    monkeypatch.delenv("SENDPY_TRUSTED_PROXY_HOPS")
    get_settings.cache_clear()


def client_at(asgi_app: Starlette, address: str) -> httpx.AsyncClient:
    """A browser at another network address (the app sees it as the caller's IP)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi_app, client=(address, 40000)),
                             base_url="http://sendpy.test")


async def test_a_stranger_guessing_cannot_lock_the_owner_out(api: httpx.AsyncClient, asgi_app: Starlette) -> None:
    email = unique_email()
    await register(api, email)
    async with client_at(asgi_app, "203.0.113.66") as stranger:
        began = time.monotonic()
        for _ in range(5):
            assert (await stranger.post("/v1/auth/login", json={"email": email, "password": "guess"})).status_code == 401
        blocked = await stranger.post("/v1/auth/login", json={"email": email, "password": "correct horse 1"})
        assert blocked.status_code == 429  # the guesser is stopped, even with the right password
        stopped_in = time.monotonic() - began
    async with client_at(asgi_app, "198.51.100.7") as owner:
        assert (await owner.post("/v1/auth/login", json={"email": email, "password": "correct horse 1"})).status_code == 200
    record_user("stranger_guesses_password", f"the 6th try from that client: 429 `{blocked.json()['error']['code']}`;"
                " the owner, from their own address, logs in (200)", stopped_in)


async def test_password_change_is_throttled_and_ends_other_sessions(api: httpx.AsyncClient,
                                                                     asgi_app: Starlette) -> None:
    email = unique_email()
    await register(api, email)
    async with client_at(asgi_app, "192.0.2.10") as other_browser:
        assert (await other_browser.post("/v1/auth/login", json={"email": email, "password": "correct horse 1"})
                ).status_code == 200
        assert (await other_browser.get("/v1/me")).status_code == 200
        key = (await api.post("/v1/api-keys", json={"name": "script"},
                              headers={"X-CSRF-Token": api.cookies["sendpy_csrf"]})).json()["key"]
        leaked = {"Authorization": f"Bearer {key}"}
        began = time.monotonic()
        for _ in range(5):
            wrong = await api.post("/v1/auth/password", headers=leaked,
                                   json={"current_password": "guess", "new_password": "taken over 1"})
            assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "wrong_password"
        stopped = await api.post("/v1/auth/password", headers=leaked,
                                 json={"current_password": "correct horse 1", "new_password": "taken over 1"})
        assert stopped.status_code == 429
        stopped_in = time.monotonic() - began
        async with client_at(asgi_app, "192.0.2.11") as owner:
            login = await owner.post("/v1/auth/login", json={"email": email, "password": "correct horse 1"})
            changed = await owner.post("/v1/auth/password", headers={"X-CSRF-Token": login.json()["csrf_token"]},
                                       json={"current_password": "correct horse 1", "new_password": "brand new pass"})
            assert changed.status_code == 204
            assert (await owner.get("/v1/me")).status_code == 200  # the session that changed it stays
        assert (await other_browser.get("/v1/me")).status_code == 401  # every other session ended
    record_user("password_change_guessing", "after 5 wrong tries 429, even with the right password; a change"
                " by the owner ends every other session", stopped_in)


async def test_guessers_behind_the_owners_address_or_from_many_cannot_lock_out_a_known_browser(
    api: httpx.AsyncClient, asgi_app: Starlette
) -> None:
    email = unique_email()
    await register(api, email)
    office = "203.0.113.80"  # one NAT address for the whole office, guessers included
    async with client_at(asgi_app, office) as owner:
        assert (await owner.post("/v1/auth/login", json={"email": email, "password": "correct horse 1"})
                ).status_code == 200  # this browser is now known to the account
        began = time.monotonic()
        for n in range(25):  # a colleague guessing other people's passwords and this one's
            async with client_at(asgi_app, office) as guesser:
                target = email if n % 2 else unique_email()
                await guesser.post("/v1/auth/login", json={"email": target, "password": "guess"})
        for n in range(110):  # and a botnet, five guesses from each of many addresses
            async with client_at(asgi_app, f"198.51.{100 + n // 5 // 250}.{n // 5 % 250 + 1}") as bot:
                await bot.post("/v1/auth/login", json={"email": email, "password": "guess"})
        async with client_at(asgi_app, office) as new_browser:  # no device cookie: closed (the address and the account are over their counts)
            closed = await new_browser.post("/v1/auth/login", json={"email": email, "password": "correct horse 1"})
            assert closed.status_code == 429
        again = await owner.post("/v1/auth/login", json={"email": email, "password": "correct horse 1"})
        assert again.status_code == 200, again.text
        for _ in range(5):  # the known browser is throttled too, on its own count
            assert (await owner.post("/v1/auth/login", json={"email": email, "password": "typo"})).status_code == 401
        assert (await owner.post("/v1/auth/login", json={"email": email, "password": "correct horse 1"})
                ).status_code == 429
    record_user("guessers_share_owner_address", "guesses from the owner's NAT address and from 22 other addresses"
                " close the address for new browsers (429); the owner's browser that logged in before still logs"
                " in (200), with 5 tries of its own", time.monotonic() - began)


async def test_concurrent_guesses_get_no_more_tries_than_sequential_ones(asgi_app: Starlette, api: httpx.AsyncClient) -> None:
    # Checked before counted, 20 guesses sent at once let 9 through a limit of 5.
    email = unique_email()
    await register(api, email)
    async with client_at(asgi_app, "203.0.113.90") as guesser:
        answers = await asyncio.gather(*(guesser.post("/v1/auth/login", json={"email": email, "password": f"guess {n}"})
                                         for n in range(20)))
    codes = [answer.status_code for answer in answers]
    assert codes.count(401) <= accounts.FAILURES_PER_EMAIL_AND_CLIENT, codes
    assert codes.count(429) >= 20 - accounts.FAILURES_PER_EMAIL_AND_CLIENT, codes


async def test_the_owner_logging_in_does_not_forgive_a_strangers_guesses(asgi_app: Starlette,
                                                                          api: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(api, email)
    async with client_at(asgi_app, "203.0.113.91") as stranger, client_at(asgi_app, "198.51.100.91") as owner:
        for _ in range(4):
            assert (await stranger.post("/v1/auth/login", json={"email": email, "password": "guess"})).status_code == 401
        assert (await owner.post("/v1/auth/login", json={"email": email, "password": "correct horse 1"})
                ).status_code == 200
        assert (await stranger.post("/v1/auth/login", json={"email": email, "password": "guess"})).status_code == 401
        assert (await stranger.post("/v1/auth/login", json={"email": email, "password": "guess"})).status_code == 429

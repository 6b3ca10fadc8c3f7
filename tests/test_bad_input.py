"""A corpus of bad campaign input: each gets a clear 4xx naming the field, and nothing is stored."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import new_api_key
from tests.fault_report import record_user

CORPUS: list[tuple[object, int, str, str | None]] = [
    ("not an object", 400, "invalid_json", None),
    ({"subject": "Hi\r\nBcc: victim@example.com"}, 400, "line_break", "subject"),
    ({"name": "a\nb"}, 400, "line_break", "name"),
    ({"subject": 42}, 400, "type_string", "subject"),
    ({"html_body": "<p>{{ name </p>"}, 400, "template", "html_body"),
    ({"html_body": "{% if x %}never closed"}, 400, "template", "html_body"),
    ({"subject": "{{ }}"}, 400, "template", "subject"),
    ({"text_body": "{% for %}"}, 400, "template", "text_body"),
    ({"html_body": "{% for i in range(100000) %}{% for j in range(2500) %}{% endfor %}{% endfor %}"}, 400,
     "template_construct", "html_body"),
    ({"html_body": "{{ 'a' * 10**8 }}"}, 400, "template_construct", "html_body"),
    ({"subject": "{{ name|center(99999999) }}"}, 400, "template_filter", "subject"),
    ({"html_body": "{% if a %}" * 100 + "x" + "{% endif %}" * 100}, 400, "template_too_deep", "html_body"),
    ({"text_body": "{{ " + "(" * 3000 + "a" + ")" * 3000 + " }}"}, 400, "template_too_deep", "text_body"),
    ({"html_body": "{% if bio|title %}{% endif %}" * 20_000}, 400, "template_construct", "html_body"),
    ({"subject": "{{ name|trim }}" * 51}, 400, "template_construct", "subject"),
    ({"subject": "x" * 1000}, 400, "too_long", "subject"),
    ({"colour": "red"}, 400, "unknown_field", "colour"),
    ({"sender_id": "1; DROP TABLE senders"}, 400, "unknown_sender", "sender_id"),
    ({"sender_id": 2**70}, 400, "unknown_sender", "sender_id"),
    ({"upload_id": "not-a-uuid"}, 400, "unknown_upload", "upload_id"),
    ({"upload_id": "00000000-0000-4000-8000-000000000000"}, 400, "unknown_upload", "upload_id"),
    ({"subject": "nul \u0000 inside"}, 400, "invalid_text", None),
]


@pytest.mark.parametrize(("body", "status", "code", "field"), CORPUS)
async def test_bad_campaign_input(api: httpx.AsyncClient, db, api_key: str, body: object, status: int,
                                  code: str, field: str | None) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    before = await db.fetchval("SELECT count(*) FROM campaigns")
    answer = await api.post("/v1/campaigns", json=body, headers=headers)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert error["message"] and "Traceback" not in error["message"]
    assert await db.fetchval("SELECT count(*) FROM campaigns") == before

    draft = (await api.post("/v1/campaigns", json={"subject": "ok"}, headers=headers)).json()
    patched = await api.patch(f"/v1/campaigns/{draft['id']}", json=body, headers=headers)
    assert patched.status_code == status
    unchanged = (await api.get(f"/v1/campaigns/{draft['id']}", headers=headers)).json()
    assert unchanged["subject"] == "ok"


async def test_other_users_objects_cannot_be_referenced(api: httpx.AsyncClient, db) -> None:
    owner = {"Authorization": f"Bearer {await new_api_key(db)}"}
    intruder = {"Authorization": f"Bearer {await new_api_key(db)}"}
    upload = (await api.post("/v1/uploads", json={"filename": "a.csv"}, headers=owner)).json()["upload"]
    answer = await api.post("/v1/campaigns", json={"upload_id": upload["id"]}, headers=intruder)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "unknown_upload"


async def test_errors_are_in_russian_when_asked(api: httpx.AsyncClient, api_key: str) -> None:
    answer = await api.post("/v1/campaigns", json={"subject": "a\nb"},
                            headers={"Authorization": f"Bearer {api_key}", "Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
    assert answer.json()["error"]["message"] == "Поле «тема» должно быть в одну строку."


@pytest.mark.parametrize(("html", "russian"), [
    ("<p>Здравствуйте, {{ name", "В шаблоне (HTML) ошибка (строка 1): шаблон закончился, а ожидалось «}}»"),
    ("<p>{{ name</p>", "В шаблоне (HTML) ошибка (строка 1): неожиданное «/»"),
    ("{% if vip %}<p>Hi</p>", "не закрыт блок {% if %}: добавьте {% endif %}"),
    ("<p>{{ a b }}</p>", "ожидалось «}}», а встретилось «b»"),
])
async def test_template_errors_are_in_russian_when_asked(api: httpx.AsyncClient, api_key: str, html: str,
                                                         russian: str) -> None:
    answer = await api.post("/v1/campaigns", json={"html_body": html},
                            headers={"Authorization": f"Bearer {api_key}", "Accept-Language": "ru"})
    assert answer.status_code == 400
    message = answer.json()["error"]["message"]
    assert russian in message and "expected" not in message and "Jinja" not in message, message


async def test_unknown_routes_and_methods_are_json_4xx(api: httpx.AsyncClient, api_key: str) -> None:
    assert (await api.get("/v1/nothing-here")).status_code == 404
    wrong_method = await api.put("/v1/campaigns", headers={"Authorization": f"Bearer {api_key}"})
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "http_405"


async def test_a_huge_body_is_refused_while_it_is_read(api: httpx.AsyncClient) -> None:
    sent = [0]

    async def endless() -> AsyncIterator[bytes]:  # chunked: no Content-Length to refuse it by
        for _ in range(400):  # up to 400 MB if nobody stops reading
            sent[0] += 1
            yield b"[" + b" " * (1024 * 1024 - 1)

    began = time.monotonic()
    answer = await api.post("/v1/auth/login", content=endless(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "body_too_large"
    assert sent[0] <= 2, f"{sent[0]} MB were read before the answer"
    record_user("huge_body_unauthenticated", f"413 `body_too_large` after {sent[0]} MB were read",
                time.monotonic() - began)
    declared = await api.post("/v1/auth/register", content=b"{}" + b" " * 70_000,
                              headers={"Content-Type": "application/json"})
    assert declared.status_code == 413


async def test_an_idempotent_start_reads_its_body_within_the_same_bounds(api: httpx.AsyncClient,
                                                                         api_key: str) -> None:
    # The final attack: `Idempotency-Key` hashed the whole body first, unbounded — 1 GB read, the
    # API at 1 GB of memory. The start route itself reads no body.
    sent = [0]

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(60):
            sent[0] += 1
            yield b" " * (1024 * 1024)

    draft = await api.post("/v1/campaigns", headers={"Authorization": f"Bearer {api_key}"}, json={"subject": "x"})
    answer = await api.post(f"/v1/campaigns/{draft.json()['id']}/start", content=endless(),
                            headers={"Authorization": f"Bearer {api_key}", "Idempotency-Key": "k1"})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "body_too_large", answer.text
    assert sent[0] <= 8, f"{sent[0]} MB were read before the answer"


DEEP_JSON_ANSWERS: dict[str, tuple[float, set[str]]] = {}


@pytest.mark.parametrize("path", ["/v1/campaigns", "/v1/senders", "/api/send-message", "/v1/auth/login"])
async def test_deeply_nested_json_is_a_400(api: httpx.AsyncClient, api_key: str, path: str) -> None:
    slowest, answers = 0.0, set()
    for body in (b"[" * 500 + b"]" * 500, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
        began = time.monotonic()
        answer = await api.post(path, content=body, headers={"Authorization": f"Bearer {api_key}",
                                                             "Content-Type": "application/json"})
        slowest = max(slowest, time.monotonic() - began)
        assert answer.status_code in (400, 413), answer.text
        assert answer.json()["error"]["code"] in ("json_too_deep", "body_too_large", "invalid_json")
        answers.add(f"{answer.status_code} `{answer.json()['error']['code']}`")
    DEEP_JSON_ANSWERS[path] = (slowest, answers)
    if len(DEEP_JSON_ANSWERS) == 4:
        every = sorted(set().union(*(a for _, a in DEEP_JSON_ANSWERS.values())))
        record_user("deep_json", " or ".join(every) + ", never a 500",
                    max(t for t, _ in DEEP_JSON_ANSWERS.values()))


@pytest.mark.parametrize("path", ["/api/health", "/v1/me", "/v1/nothing-here", "/u/not-a-token"])
async def test_every_answer_carries_the_security_headers(api: httpx.AsyncClient, path: str) -> None:
    answer = await api.get(path)
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["referrer-policy"] == "no-referrer"


async def test_big_json_bodies_are_parsed_off_the_event_loop(api: httpx.AsyncClient, api_key: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Three million items took a second to parse and walk, during which no other request moved.
    from functions import parsing

    threads: dict[int, str] = {}
    original = parsing.json.loads

    def recorded(body: bytes) -> object:
        threads[len(body)] = threading.current_thread().name
        return original(body)

    monkeypatch.setattr(parsing.json, "loads", recorded)
    auth = {"Authorization": f"Bearer {api_key}"}
    small = b'{"name": "small"}'
    big = b'{"name": "big", "x": [' + b"0," * 3_000_000 + b"0]}"
    assert (await api.post("/v1/campaigns", headers=auth, content=small)).status_code == 201
    refused = await api.post("/v1/campaigns", headers=auth, content=big)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "unknown_field", refused.text
    main = threading.main_thread().name
    assert threads[len(small)] == main and threads[len(big)] != main, threads


@pytest.mark.parametrize("failure", ["CannotConnectNowError", "ConnectionDoesNotExistError", "InterfaceError"])
async def test_a_database_restarting_is_a_503_to_retry_not_a_500(api: httpx.AsyncClient, api_key: str,
                                                                 monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    # Seen while Postgres restarted: "the database system is starting up" reached the caller as a 500.
    import asyncpg

    from functions import resources

    async def away() -> None:
        raise getattr(asyncpg.exceptions, failure)("the database system is starting up")

    monkeypatch.setattr(resources, "db", away)
    answer = await api.get("/v1/campaigns", headers={"Authorization": f"Bearer {api_key}", "Accept-Language": "ru"})
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "2"
    assert answer.json()["error"]["code"] == "unavailable"
    assert "база данных недоступна" in answer.json()["error"]["message"]

"""Contact uploads through a presigned POST to real (moto) S3, inspected by the API or a worker."""

from __future__ import annotations

import asyncio
import csv
import io
import time

import httpx
import pytest

from shared import uploads
from tests.conftest import Workers, new_api_key
from tests.fault_report import record_user
from tests.helpers import campaign_action, complete, make_sender, upload_file, wait_ready, wait_status

RU_FILE = "Почта;Имя;Город\r\nivan@example.ru;Иван;Москва\r\nolga@example.ru;Ольга;Казань\r\nOLGA@example.ru;Оля;Казань\r\nне-адрес;Пётр;Омск\r\n"


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def test_small_file_is_inspected_at_once(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    upload = await upload_file(api, auth, RU_FILE.encode("cp1251"))
    answer = await complete(api, auth, upload["id"])
    assert answer.status_code == 200, answer.text
    ready = answer.json()
    assert ready["status"] == "ready"
    assert ready["dialect"] == {"encoding": "cp1251", "delimiter": ";", "has_header": True, "email_column": 0}
    assert [c["field"] for c in ready["columns"]] == ["почта", "имя", "город"]
    assert ready["preview"][0] == ["ivan@example.ru", "Иван", "Москва"]
    report = ready["report"]
    assert (report["rows"], report["valid"], report["invalid"], report["duplicates"]) == (4, 2, 1, 1)
    assert report["invalid_examples"][0]["row"] == 5


async def test_corrections_are_applied(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    upload = await upload_file(api, auth, b"a@example.com,b@example.com\nc@example.com,d@example.com\n")
    first = (await complete(api, auth, upload["id"])).json()
    assert first["dialect"]["email_column"] == 0 and first["dialect"]["has_header"] is False
    fixed = await api.patch(f"/v1/uploads/{upload['id']}", json={"email_column": 1, "has_header": True},
                            headers=auth)
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["dialect"]["email_column"] == 1 and fixed.json()["report"]["rows"] == 1
    bad = await api.patch(f"/v1/uploads/{upload['id']}", json={"delimiter": "#"}, headers=auth)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "delimiter"


async def test_large_file_is_inspected_by_a_worker_with_progress(
    api: httpx.AsyncClient, auth: dict[str, str], workers: Workers
) -> None:
    rows = [f"person{n}@example.com,Name number {n}" for n in range(60_000)] + ["broken@,x", "person1@example.com,dup"]
    data = ("email,name\n" + "\n".join(rows) + "\n").encode()
    assert len(data) > 2 * 1024 * 1024
    upload = await upload_file(api, auth, data)
    health: list[float] = []

    async def poll_health() -> None:  # the API's event loop must stay free meanwhile
        while True:
            began = time.monotonic()
            assert (await api.get("/api/health")).status_code == 200
            health.append(time.monotonic() - began)
            await asyncio.sleep(0.01)

    poller = asyncio.create_task(poll_health())
    began = time.monotonic()
    answer = await complete(api, auth, upload["id"])
    answered_in = time.monotonic() - began
    poller.cancel()
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "inspecting"
    ready = await wait_ready(api, auth, upload["id"])
    record_user("big_contact_file", f"202 `inspecting` with `rows_read` progress, then `ready` with the counts"
                f" after {time.monotonic() - began:.1f} s; `/api/health` meanwhile at most"
                f" {max(health) * 1000:.1f} ms ({len(health)} calls)", answered_in)
    assert ready["status"] == "ready", ready
    report = ready["report"]
    assert (report["rows"], report["valid"], report["invalid"], report["duplicates"]) == (60_002, 60_000, 1, 1)
    assert ready["rows_read"] == 60_002


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"email;name\r\n", "no_rows"),
        (b"PK\x03\x04\x14\x00\x06\x00" + bytes(200), "excel_file"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "not_text"),
        (b"name,city\nAnn,Paris\n", "no_email_column"),
        (b"x" * (3 * 1024 * 1024 + 10), "file_too_large"),
    ],
)
async def test_bad_files_fail_with_a_clear_error(api: httpx.AsyncClient, auth: dict[str, str], data: bytes,
                                                 code: str) -> None:
    upload = await upload_file(api, auth, data)
    answer = await complete(api, auth, upload["id"])
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == code
    stored = (await api.get(f"/v1/uploads/{upload['id']}", headers=auth)).json()
    assert stored["status"] == "failed" and stored["error"]["code"] == code


async def test_completing_before_uploading_says_so(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    created = (await api.post("/v1/uploads", json={"filename": "x.csv"}, headers=auth)).json()
    answer = await complete(api, auth, created["upload"]["id"])
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "upload_missing"


async def test_other_users_uploads_are_not_found(api: httpx.AsyncClient, auth: dict[str, str], db) -> None:
    upload = await upload_file(api, auth, b"email\na@example.com\n")
    other = {"Authorization": f"Bearer {await new_api_key(db)}"}
    for method, path in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/complete")):
        answer = await api.request(method, f"/v1/uploads/{upload['id']}{path}", headers=other,
                                   json={} if method == "PATCH" else None)
        assert answer.status_code == 404, (method, path, answer.text)
    assert (await api.delete(f"/v1/uploads/{upload['id']}", headers=auth)).status_code == 204


async def test_a_wrong_encoding_choice_is_reported(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    upload = await upload_file(api, auth, RU_FILE.encode("cp1251"))
    assert (await complete(api, auth, upload["id"])).json()["dialect"]["encoding"] == "cp1251"
    wrong = await api.patch(f"/v1/uploads/{upload['id']}", json={"encoding": "utf-8"}, headers=auth)
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "wrong_encoding"
    assert "windows-1251" in wrong.json()["error"]["message"]
    utf16 = await upload_file(api, auth, RU_FILE.replace(";", "\t").encode("utf-16"))
    assert (await complete(api, auth, utf16["id"])).json()["dialect"]["delimiter"] == "\t"


async def test_every_problem_row_can_be_downloaded_and_empty_is_told_from_malformed(
    api: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    lines = ["ФИО;Эл. почта"] + [f"Человек {n};p{n}@example.ru" for n in range(40)]
    lines += [f"Пустой {n};" for n in range(30)] + [f"Кривой {n};p{n}.example.ru" for n in range(25)]
    lines.insert(10, '"Незакрытая кавычка;q@example.ru')  # the quote never closes on this line
    upload = await upload_file(api, auth, ("\r\n".join(lines) + "\r\n").encode("utf-8"))
    ready = (await complete(api, auth, upload["id"])).json()
    report = ready["report"]
    assert (report["valid"], report["empty"], report["invalid"]) == (40, 30, 26)
    assert len(report["invalid_examples"]) < 56  # the page shows the first ones, "and N more" …

    answer = await api.get(f"/v1/uploads/{upload['id']}/problems.csv?lang=ru", headers=auth)
    assert answer.status_code == 200 and answer.content.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig")), delimiter=";"))
    assert table[0] == ["Строка файла", "Значение", "Что не так", "ФИО"]  # then the row's other columns
    assert len(table) == 1 + 30 + 26  # … the download has every one
    assert ["11", '"Незакрытая кавычка;q@example.ru', table[1][2], ""] == table[1] and "незакрытая кавычка" in table[1][2]
    first_empty = next(row for row in table if row[1] == "")
    assert first_empty[2] == "пусто"  # the reader's language only, not "пусто / empty"
    malformed = next(row for row in table if row[1] == "p0.example.ru")
    assert malformed[2] == "нет знака @"
    english = await api.get(f"/v1/uploads/{upload['id']}/problems.csv?lang=en", headers=auth)
    rows = list(csv.reader(io.StringIO(english.content.decode("utf-8-sig"))))
    assert rows[1][2].startswith("line 11: unclosed quote") and "строка" not in rows[1][2]
    assert next(row for row in rows if row[1] == "p0.example.ru")[2] == "An email address must have an @-sign."
    assert int(malformed[0]) == 1 + 1 + 40 + 30 + 1  # header, the unclosed line, 40 good, 30 empty: line 73


async def test_a_small_file_not_read_within_the_budget_goes_to_the_file_readers(
    api: httpx.AsyncClient, auth: dict[str, str], db, clean_sink, workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # However small, a file the request cannot read within its budget (one crafted to be slow to
    # read took 0.9 s of CPU) is counted by the file readers: 202 `inspecting`, then the counts. A
    # correction takes the same path, and so do the campaigns made from it (loaded there too).
    monkeypatch.setattr(uploads, "INLINE_INSPECT_SECONDS", 0.0)  # out of time after the first record
    upload = await upload_file(api, auth, RU_FILE.encode("cp1251"))
    answer = await complete(api, auth, upload["id"])
    assert answer.status_code == 202 and answer.json()["status"] == "inspecting", answer.text
    ready = await wait_ready(api, auth, upload["id"])
    assert ready["status"] == "ready", ready
    assert [ready["report"][k] for k in ("rows", "valid", "invalid", "duplicates")] == [4, 2, 1, 1]
    fixed = await api.patch(f"/v1/uploads/{upload['id']}", json={"has_header": False}, headers=auth)
    assert fixed.status_code == 202 and fixed.json()["status"] == "inspecting", fixed.text
    ready = await wait_ready(api, auth, upload["id"])
    assert ready["status"] == "ready" and ready["report"]["rows"] == 5, ready

    sender = await make_sender(api, auth, clean_sink)
    draft = await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "s", "html_body": "<p>b</p>"})
    assert draft.status_code == 201, draft.text
    campaign_id = draft.json()["id"]
    await campaign_action(api, auth, campaign_id, "start")
    done = await wait_status(api, auth, campaign_id, {"finished", "paused"})
    assert done["status"] == "finished" and done["counts"]["sent"] == 2, done
    loads = [line for line in workers.logged("reading a file") if campaign_id in line]
    assert loads and '"kind": "load"' in loads[0], loads  # by a file reader, not on the commands topic

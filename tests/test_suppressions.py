"""One suppression list per account: every path honours it, it outlives campaigns and senders,
and the API lists, searches, adds, removes, imports and exports it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import csv
import io
import threading
import time
from typing import Any

import asyncpg
import httpx
import pytest

from sendpy.devstack.smtp_sink import SmtpSink
from shared import suppressions
from shared.db import migrate
from shared.suppressions import suppression_key
from tests.conftest import Workers, new_api_key
from tests.helpers import make_sender, make_upload, wait_status


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@pytest.mark.parametrize(("address", "key"), [
    ("Ivan@Example.RU", "ivan@example.ru"),
    ("John.Doe+news@Gmail.com", "johndoe@gmail.com"),
    ("johndoe@googlemail.com", "johndoe@gmail.com"),
    ("ivan.petrov+shop@ya.ru", "ivan-petrov@yandex.ru"),
    ("ivan-petrov@yandex.com", "ivan-petrov@yandex.ru"),
    ("anna+promo@outlook.com", "anna@outlook.com"),
    ("anna.k+x@example.com", "anna.k+x@example.com"),  # elsewhere "+" and "." are the server's to interpret
    ("мария@пример.рф", "мария@xn--e1afmkfd.xn--p1ai"),
    ("Olga@Почта.рф", "olga@xn--80a1acny.xn--p1ai"),
])
def test_the_same_mailbox_has_the_same_key(address: str, key: str) -> None:
    assert suppression_key(address) == key


async def one_shot(api: httpx.AsyncClient, auth: dict[str, str], sink: SmtpSink, recipients: list[str],
                   sender_email: str) -> dict[str, Any]:
    sent = await api.post("/api/send-message", headers=auth, json={
        "message": "<p>Hi</p>", "message_subject": "s", "sender_email": sender_email, "smtp_password": "p",
        "recipient_email_list": recipients, "server_host": "127.0.0.1", "server_port": sink.port})
    assert sent.status_code == 202, sent.text
    return await wait_status(api, auth, sent.json()["campaign_id"], {"finished", "paused"}, timeout=60)


async def test_an_unsubscribe_holds_for_every_sender_and_path_and_outlives_them(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, db: asyncpg.Pool
) -> None:
    # The measurement of the issue: a second sender with the same From address (another port)
    # mailed a person who had unsubscribed through the first; /api/send-message ignored it too.
    first = await make_sender(api, auth, clean_sink, from_email="shop@example.org")
    upload = await make_upload(api, auth, b"email\nleaver@example.com\n")
    draft = (await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": first["id"], "upload_id": upload["id"], "subject": "Hi", "html_body": "<p>Hi</p>"})).json()
    assert (await api.post(f"/v1/campaigns/{draft['id']}/start", headers=auth)).status_code == 202
    await wait_status(api, auth, draft["id"], {"finished"})
    [mail] = [m for m in clean_sink.messages if m.rcpt_tos == ("leaver@example.com",)]
    link = mail.parsed()["List-Unsubscribe"].strip("<>").split("://", 1)[1].split("/", 1)[1]
    assert (await api.post(f"/{link}", content=b"List-Unsubscribe=One-Click",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})).status_code == 200
    clean_sink.clear()

    # The campaign and the sender it came through are deleted; the entry stays.
    assert (await api.delete(f"/v1/campaigns/{draft['id']}", headers=auth)).status_code == 204
    assert (await api.delete(f"/v1/senders/{first['id']}", headers=auth)).status_code == 204
    [entry] = (await api.get("/v1/suppressions?q=leaver", headers=auth)).json()["items"]
    assert (entry["reason"], entry["campaign_id"], entry["sender_email"]) == (
        "unsubscribed", draft["id"], "shop@example.org")

    # Another sender, same From address, the implicit-TLS port; the same mailbox written otherwise.
    second = await make_sender(api, auth, clean_sink, from_email="shop@example.org", port=clean_sink.tls_port,
                               security="tls")
    contacts = await make_upload(api, auth, b"email\nLEAVER@example.com\nstays@example.com\n")
    assert contacts["report"]["suppressed"] == 1
    draft = (await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": second["id"], "upload_id": contacts["id"], "subject": "Hi", "html_body": "<p>Hi</p>"})).json()
    assert (await api.post(f"/v1/campaigns/{draft['id']}/start", headers=auth)).status_code == 202
    done = await wait_status(api, auth, draft["id"], {"finished"})
    assert (done["counts"]["sent"], done["counts"]["skipped"]) == (1, 1), done

    # The one-shot API, through the same account.
    shot = await one_shot(api, auth, clean_sink, ["leaver@example.com", "also-stays@example.com"], "shop@example.org")
    assert shot["status"] == "finished" and (shot["counts"]["sent"], shot["counts"]["skipped"]) == (1, 1), shot
    skipped = (await api.get(f"/v1/campaigns/{shot['id']}/recipients?status=skipped", headers=auth)).json()["items"]
    assert [(r["email"], r["reply"]) for r in skipped] == [("leaver@example.com", "suppressed")]

    # A test send goes out (it is the user's own check) with a warning.
    test = await api.post(f"/v1/campaigns/{draft['id']}/test", headers={**auth, "Accept-Language": "ru"},
                          json={"email": "Leaver@example.com"})
    assert test.status_code == 200 and "в вашем списке исключений" in test.json()["warning"], test.text

    mailed = {r.lower() for m in clean_sink.messages for r in m.rcpt_tos}
    assert "leaver@example.com" in mailed  # the test send only
    assert sum(r.lower() == "leaver@example.com" for m in clean_sink.messages for r in m.rcpt_tos) == 1


async def test_gmail_spellings_of_a_suppressed_mailbox_are_skipped(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers
) -> None:
    added = await api.post("/v1/suppressions", headers=auth, json={"emails": ["John.Doe+news@Gmail.com"]})
    assert added.status_code == 201 and added.json()["added"] == 1
    again = await api.post("/v1/suppressions", headers=auth, json={"emails": ["johndoe@googlemail.com"]})
    assert again.json()["added"] == 0  # the same mailbox
    shot = await one_shot(api, auth, clean_sink, ["j.o.h.n.doe@gmail.com", "johndoe+x@googlemail.com"],
                          "me@example.org")
    assert shot["counts"]["skipped"] == 2 and shot["counts"]["sent"] == 0, shot
    assert clean_sink.messages == []


async def test_list_search_remove_import_and_export(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    imported = await api.post("/v1/suppressions/import", headers={**auth, "Content-Type": "text/csv"},
                              content="Почта;Имя\r\nann@example.com;Аня\r\nbob@example.com;Боб\r\nnot-an-address;X\r\n"
                                      "ann@example.com;again\r\n".encode("cp1251"))
    assert imported.status_code == 201, imported.text
    body = imported.json()
    assert (body["added"], body["already"]) == (2, 0)
    assert body["problems"][0]["row"] == 4
    listed = (await api.get("/v1/suppressions", headers=auth)).json()
    assert listed["total"] == 2 and [i["reason"] for i in listed["items"]] == ["imported", "imported"]
    found = (await api.get("/v1/suppressions?q=BOB", headers=auth)).json()["items"]
    assert [i["email"] for i in found] == ["bob@example.com"]
    assert (await api.get("/v1/suppressions?q=b%25", headers=auth)).json()["items"] == []  # no wildcards

    exported = await api.get("/v1/suppressions/export", headers=auth)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:2] == ["email", "reason"] and {r[0] for r in rows[1:]} == {"ann@example.com", "bob@example.com"}
    # Its own export imports back as it is: nothing new.
    back = await api.post("/v1/suppressions/import", headers={**auth, "Content-Type": "text/csv"},
                          content=exported.content)
    assert back.json()["added"] == 0 and back.json()["already"] == 2

    assert (await api.delete("/v1/suppressions/ANN@example.com", headers=auth)).status_code == 204
    assert (await api.delete("/v1/suppressions/ann@example.com", headers=auth)).status_code == 404
    nothing = await api.post("/v1/suppressions/import", headers={**auth, "Content-Type": "text/csv"},
                             content=b"name\nno addresses here\n")
    assert nothing.status_code == 400 and nothing.json()["error"]["code"] == "no_addresses"


async def test_per_sender_lists_migrate_into_the_account_list(fresh_db: asyncpg.Connection[Any]) -> None:
    # A database as it was before migration 7, with two senders' lists of one user.
    conn = fresh_db
    await migrate(conn, up_to=6)
    user_id = await conn.fetchval("INSERT INTO users (email) VALUES ('owner@example.com') RETURNING id")
    senders = [await conn.fetchval(
        "INSERT INTO senders (user_id, from_email, host, port, security, username, password_encrypted)"
        " VALUES ($1, 'shop@example.org', 'smtp.example.org', $2, 'starttls', 'u', '\\x00') RETURNING id",
        user_id, port) for port in (587, 465)]
    await conn.executemany("INSERT INTO suppressions (sender_id, email, reason) VALUES ($1, $2, $3)", [
        (senders[0], "john.doe@gmail.com", "unsubscribed"), (senders[1], "johndoe+x@gmail.com", "manual"),
        (senders[1], "bounced@example.com", "bounced")])
    assert await migrate(conn, up_to=7) == [7]
    rows = await conn.fetch("SELECT address, email, reason, sender_email FROM suppressed ORDER BY address")
    assert [tuple(r) for r in rows] == [
        ("bounced@example.com", "bounced@example.com", "hard_bounce", "shop@example.org"),
        ("johndoe@gmail.com", "john.doe@gmail.com", "unsubscribed", "shop@example.org")]
    await conn.execute("DELETE FROM senders")
    assert await conn.fetchval("SELECT count(*) FROM suppressed") == 2  # no longer tied to a sender


async def user_of(db: asyncpg.Pool, auth: dict[str, str]) -> int:
    prefix = auth["Authorization"].removeprefix("Bearer ").split("_")[1]
    user_id: int = await db.fetchval("SELECT user_id FROM api_keys WHERE prefix = $1", prefix)
    return user_id


async def test_an_import_keeps_its_good_lines_and_names_the_bad_ones_by_line(
    api: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # A stray quote used to swallow every line after it; a cell over 131,072 characters was a 500.
    lines = ["email", "ann@example.com", '"bob@example.com', "carl@example.com", "not an address",
             "dan@exa mple.com", "eve@example.com;" + "x" * 140_000, "fay@example.com"]
    answer = await api.post("/v1/suppressions/import", headers={**auth, "Accept-Language": "ru"},
                            content="\r\n".join(lines).encode())
    assert answer.status_code == 201, answer.text[:500]
    body = answer.json()
    assert (body["added"], body["problem_count"]) == (4, 3), body
    assert [(p["line"], p["reason"]) for p in body["problems"]] == [
        (5, "в строке нет адреса электронной почты"),
        (6, "неправильный адрес электронной почты: недопустимые символы в домене после @"),
        (7, "строка длиннее 10,000 символов")]
    listed = {i["email"] for i in (await api.get("/v1/suppressions", headers=auth)).json()["items"]}
    assert listed == {"ann@example.com", "bob@example.com", "carl@example.com", "fay@example.com"}
    english = await api.post("/v1/suppressions/import", headers=auth, content=b"ann@example.com\nnope\n")
    assert english.json()["problems"] == [{"line": 2, "row": 2, "value": "nope",
                                           "reason": "no email address in this line"}]


async def test_a_crafted_import_cannot_make_the_csv_sniffer_take_long(
    api: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # csv.Sniffer is quadratic in its sample: this 75 KB file took 28 s when it sniffed 64 KB.
    crafted = ',"a' * 25_000 + "\nann@example.com\n"
    started = time.monotonic()
    answer = await api.post("/v1/suppressions/import", headers=auth, content=crafted.encode())
    took = time.monotonic() - started
    assert answer.status_code == 201 and answer.json()["added"] == 1, answer.text[:300]
    assert took < 5, f"the import took {took:.1f} s"


async def test_an_address_with_a_slash_can_be_removed(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    added = await api.post("/v1/suppressions", headers=auth, json={"emails": ["a/b@example.com", "c/d@example.com"]})
    assert added.status_code == 201 and added.json()["added"] == 2
    assert (await api.delete("/v1/suppressions/a%2Fb@example.com", headers=auth)).status_code == 204
    assert (await api.delete("/v1/suppressions", params={"email": "C/D@example.com"}, headers=auth)).status_code == 204
    assert (await api.get("/v1/suppressions", headers=auth)).json()["total"] == 0
    missing = await api.delete("/v1/suppressions", headers=auth)
    assert missing.status_code == 400 and missing.json()["error"]["field"] == "email"


async def test_the_export_speaks_the_readers_language_and_imports_back(
    api: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await api.post("/v1/suppressions", headers=auth, json={"emails": ["ann@example.com"]})
    exported = await api.get("/v1/suppressions/export?lang=ru", headers=auth)
    assert exported.status_code == 200 and exported.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:3] == ["Эл. почта", "Причина", "Добавлен (UTC)"]
    assert rows[1][:2] == ["ann@example.com", "добавлен вручную"]
    by_browser = await api.get("/v1/suppressions/export", headers={**auth, "Accept-Language": "ru-RU,ru;q=0.9"})
    assert by_browser.content.decode("utf-8-sig").startswith("Эл. почта;Причина")
    back = await api.post("/v1/suppressions/import", headers=auth, content=exported.content)
    assert back.status_code == 201 and (back.json()["already"], back.json()["problem_count"]) == (1, 0), back.text


async def test_the_list_is_capped_for_what_a_person_adds_but_never_for_unsubscribes(
    api: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(suppressions, "MAX_ENTRIES", 5)
    assert (await api.post("/v1/suppressions", headers=auth,
                           json={"emails": [f"p{n}@example.com" for n in range(4)]})).json()["added"] == 4
    over = await api.post("/v1/suppressions", headers={**auth, "Accept-Language": "ru"},
                          json={"emails": ["p0@example.com", "q1@example.com", "q2@example.com"]})
    assert over.status_code == 400, over.text
    error = over.json()["error"]
    assert (error["code"], error["field"]) == ("suppressions_full", "emails")
    assert "не больше 5 адресов" in error["message"] and "уже 4" in error["message"], error
    imported = await api.post("/v1/suppressions/import", headers=auth, content=b"q1@example.com\nq2@example.com\n")
    assert imported.status_code == 400 and imported.json()["error"]["field"] == "file", imported.text
    assert (await api.get("/v1/suppressions", headers=auth)).json()["total"] == 4  # nothing of either stayed
    assert (await api.post("/v1/suppressions", headers=auth, json={"emails": ["q1@example.com"]})).status_code == 201
    user_id = await user_of(db, auth)
    async with db.acquire() as conn:
        assert await suppressions.add(conn, user_id, ["leaver@example.com"], "unsubscribed") == 1
    assert (await api.get("/v1/suppressions", headers=auth)).json()["total"] == 6


async def test_a_long_list_is_never_read_whole_for_a_message_an_upload_or_a_campaign(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, workers: Workers, db: asyncpg.Pool,
) -> None:
    user_id = await user_of(db, auth)
    entries = 300_000
    await db.execute("INSERT INTO suppressed (user_id, address, email, reason) SELECT $1, a, a, 'imported'"
                     " FROM (SELECT 'person' || g || '@example.com' AS a FROM generate_series(1, $2) g) s",
                     user_id, entries)

    # The one-shot API asks about its own addresses only (it read the whole list: 1.3 s a send at 1.1M).
    shot = await one_shot(api, auth, clean_sink, ["person7@example.com", "someone@example.com"], "me@example.org")
    assert (shot["counts"]["skipped"], shot["counts"]["sent"]) == (1, 1), shot

    # The upload report and the fan-out ask about the file's addresses only, in batches (they read
    # the whole list: six uploads completing at once stalled the API for 5 s). Counted as before.
    assert not hasattr(suppressions, "keys")
    suppressed, fresh = 10_990, 10  # more than one lookup batch
    lines = [f"person{n}@example.com" for n in range(1, suppressed + 1)] + [f"fresh{n}@example.com" for n in range(fresh)]
    data = ("email\n" + "\n".join(lines) + "\nPERSON1@example.com\n").encode()
    read_before = await tuples_read(db)
    upload = await make_upload(api, auth, data)
    report = upload["report"]
    assert (report["suppressed"], report["valid"], report["duplicates"]) == (suppressed, fresh, 1), report
    sender = await make_sender(api, auth, clean_sink, from_email="list@example.org")
    draft = (await api.post("/v1/campaigns", headers=auth, json={
        "sender_id": sender["id"], "upload_id": upload["id"], "subject": "Hi", "html_body": "<p>Hi</p>"})).json()
    assert (await api.post(f"/v1/campaigns/{draft['id']}/start", headers=auth)).status_code == 202
    done = await wait_status(api, auth, draft["id"], {"finished"}, timeout=120)
    assert (done["counts"]["sent"], done["counts"]["skipped"]) == (fresh, suppressed), done
    skipped = (await api.get(f"/v1/campaigns/{draft['id']}/recipients?status=skipped", headers=auth)).json()
    assert {r["reply"] for r in skipped["items"]} == {"suppressed"}, skipped
    # Both passes together read about the file's keys from the table, not its 300,000 rows.
    await asyncio.sleep(2)  # the servers' statistics reach the view within a second or so
    read = await tuples_read(db) - read_before
    assert suppressed <= read < entries // 2, read


async def tuples_read(db: asyncpg.Pool) -> int:
    """Entries of `suppressed` read so far by any backend, through its indexes or scanned."""
    async with db.acquire() as conn:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        total: int = await conn.fetchval(
            "SELECT t.seq_tup_read + (SELECT coalesce(sum(i.idx_tup_read), 0) FROM pg_stat_user_indexes i"
            " WHERE i.relid = t.relid) FROM pg_stat_user_tables t WHERE t.relname = 'suppressed'")
    return total


async def test_imports_run_in_threads_of_their_own_and_one_at_a_time_per_account(
    api: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Pool
) -> None:
    # Six imports at once filled asyncio's default threads, which log-ins and /api/send-message
    # share: another user's send waited 18 s. Here the default threads are all busy meanwhile.
    loop = asyncio.get_running_loop()
    default = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(default)
    busy = threading.Event()
    blocked = loop.run_in_executor(None, busy.wait, 60)
    try:
        data = "\n".join(f"imp{n}@example.com" for n in range(20_000)).encode()
        first = await asyncio.wait_for(api.post("/v1/suppressions/import", headers=auth, content=data), 60)
        assert first.status_code == 201 and first.json()["added"] == 20_000, first.text[:300]
        exported = await asyncio.wait_for(api.get("/v1/suppressions/export", headers=auth), 60)
        assert exported.status_code == 200 and exported.text.count("\n") == 20_001
    finally:
        busy.set()
        await blocked
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor())  # the loop outlives this test
        default.shutdown(wait=False)

    # A second import of the same account while one runs is refused, saying why; another
    # account's goes on.
    held = threading.Event()
    parked = [loop.run_in_executor(suppressions.FILE_THREADS, held.wait, 60) for _ in range(2)]
    try:
        running = asyncio.create_task(api.post("/v1/suppressions/import", headers=auth, content=b"a1@example.com\n"))
        await asyncio.sleep(0.5)  # it holds the account's import lock, waiting for a thread
        second = await api.post("/v1/suppressions/import", headers={**auth, "Accept-Language": "ru"},
                                content=b"a2@example.com\n")
        assert second.status_code == 409, second.text
        assert "уже идёт загрузка" in second.json()["error"]["message"], second.text
        english = await api.post("/v1/suppressions/import", headers=auth, content=b"a2@example.com\n")
        assert english.status_code == 409 and "already running" in english.json()["error"]["message"]
        other = {"Authorization": f"Bearer {await new_api_key(db)}"}
        elsewhere = asyncio.create_task(api.post("/v1/suppressions/import", headers=other,
                                                 content=b"b1@example.com\n"))
        await asyncio.sleep(0.5)
        assert not elsewhere.done()  # waits for a thread, not refused
    finally:
        held.set()
        await asyncio.gather(*parked)
    assert (await running).status_code == 201 and (await elsewhere).status_code == 201
    again = await api.post("/v1/suppressions/import", headers=auth, content=b"a2@example.com\n")
    assert again.status_code == 201 and again.json()["added"] == 1, again.text


async def test_addresses_the_export_neutralises_import_back(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    # The export writes '-minus@… (so a spreadsheet shows it, not a formula); the import's sniffer
    # took "'" for the quote character and lost these addresses (issue 11).
    emails = ["-minus@example.com", "+plus@example.com", "=eq@example.com", "ann@example.com"]
    added = await api.post("/v1/suppressions", headers=auth, json={"emails": emails})
    assert added.status_code == 201 and added.json()["added"] == 4, added.text
    for lang in ("en", "ru"):
        exported = await api.get(f"/v1/suppressions/export?lang={lang}", headers=auth)
        assert "'-minus@example.com" in exported.text
        for email in emails:
            assert (await api.delete(f"/v1/suppressions/{email}", headers=auth)).status_code == 204, email
        back = await api.post("/v1/suppressions/import", headers=auth, content=exported.content)
        assert back.status_code == 201, back.text
        assert (back.json()["added"], back.json()["problem_count"]) == (4, 0), back.text
        listed = {i["email"] for i in (await api.get("/v1/suppressions", headers=auth)).json()["items"]}
        assert listed == set(emails), listed
    # A list holding just such a line (an export saved again by a spreadsheet) reads the same.
    plain = await api.post("/v1/suppressions/import", headers=auth, content=b"email\n'-minus@example.com\n")
    assert plain.json()["already"] == 1, plain.text


async def test_the_list_page_counts_no_further_than_ten_thousand(
    api: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Pool
) -> None:
    # Counting the whole list on every page took 0.1 s at a million entries, and 40 pages at once
    # slowed everyone's requests (issue 11): past COUNT_CAP the page says "10 000+".
    user_id = (await api.get("/v1/me", headers=auth)).json()["id"]
    await db.execute("INSERT INTO suppressed (user_id, address, email, reason) SELECT $1, a, a, 'imported'"
                     " FROM (SELECT 'many' || n || '@example.com' AS a FROM generate_series(1, $2) n) AS s",
                     user_id, suppressions.COUNT_CAP + 50)
    listed = (await api.get("/v1/suppressions", headers=auth)).json()
    assert (listed["total"], listed["total_capped"]) == (suppressions.COUNT_CAP, True), {**listed, "items": ...}
    await db.execute("DELETE FROM suppressed WHERE user_id = $1 AND address LIKE 'many1%'", user_id)
    listed = (await api.get("/v1/suppressions", headers=auth)).json()
    assert listed["total_capped"] is False and 0 < listed["total"] < suppressions.COUNT_CAP


async def test_the_separator_is_the_one_most_lines_agree_on(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    # A BOM, an `Email;Name` header and a few malformed lines made csv.Sniffer fall back to commas,
    # and every `addr;name` row was rejected (issue 11).
    body = ('\ufeffEmail;Name\r\n=1+2@example.com;x\r\n+5@example.com;y\r\n-x@example.com;z\r\n'
            '"unclosed@example.com;x\r\na/b@example.com\r\n"quo""te"@example.com\r\nnot-an-address\r\n'
            'ann@example.com;Анна\r\nbob@example.com\r\n').encode()
    answer = await api.post("/v1/suppressions/import", headers=auth, content=body)
    assert answer.status_code == 201, answer.text
    # Every "addr;name" row counts; the malformed lines (5–8) are reported, each on its own.
    assert {p["line"] for p in answer.json()["problems"]} <= {5, 6, 7, 8}, answer.text
    assert answer.json()["added"] == 6, answer.text

"""The suppression list's rules (issue 11, the last attack): which spellings are one mailbox,
provider by provider, and entries kept under an older rule still matching; and the cap on what a
person adds, counted from one row, never refusing an unsubscribe or a bounce."""

from __future__ import annotations

import dataclasses
import os
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from shared import suppressions
from shared.bounces.dsn import Bounce, BouncedRecipient
from shared.bounces.record import SenderRef, carries_our_tag
from shared.db import migrate
from shared.mailbox_keys import fast_key, suppression_key
from shared.unsubscribe import message_tag
from tests.test_suppressions import user_of


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@pytest.mark.parametrize(("spellings", "key"), [
    # Gmail: dots and +tags do not count, googlemail.com is gmail.com.
    (["J.Doe+news@googlemail.com", "jdoe@gmail.com", "j.d.o.e@Gmail.com"], "jdoe@gmail.com"),
    # Yandex: one login on every Yandex domain, +tags ignored, "." is "-".
    (["ivan.petrov@yandex.ru", "ivan-petrov+shop@ya.ru", "Ivan.Petrov@yandex.com", "ivan.petrov@yandex.by",
      "ivan-petrov@yandex.kz", "ivan.petrov@yandex.ua", "ivan-petrov@narod.ru"], "ivan-petrov@yandex.ru"),
    # iCloud: me.com and mac.com are the icloud.com address of the same name; +tags ignored.
    (["anna@icloud.com", "Anna@me.com", "anna+shop@mac.com", "anna+x@icloud.com"], "anna@icloud.com"),
    (["a.nna@me.com"], "a.nna@icloud.com"),  # dots count at Apple
    # Outlook.com: +tags ignored within each domain, dots count.
    (["a.nna+x@outlook.com", "A.Nna@outlook.com"], "a.nna@outlook.com"),
    (["anna+x@hotmail.com"], "anna@hotmail.com"),
    (["anna+x@live.com"], "anna@live.com"),
    (["anna+x@msn.com"], "anna@msn.com"),
])
def test_spellings_a_provider_delivers_to_one_mailbox_have_one_key(spellings: list[str], key: str) -> None:
    for spelling in spellings:
        assert suppression_key(spelling) == key, spelling
        assert fast_key(spelling) == key, spelling  # the workers' path for normalised addresses


@pytest.mark.parametrize("mailboxes", [
    # Mail.ru's domains are different mailboxes, and nothing in a local part is ignored there.
    ["ivan@mail.ru", "ivan@inbox.ru", "ivan@list.ru", "ivan@bk.ru", "ivan@internet.ru", "ivan+x@mail.ru",
     "i.van@mail.ru"],
    # Outlook, Hotmail, Live and MSN are different mailboxes too.
    ["anna@outlook.com", "anna@hotmail.com", "anna@live.com", "anna@msn.com"],
    # Providers of different companies stay apart, whatever the name.
    ["anna@icloud.com", "anna@gmail.com", "anna@yandex.ru", "anna@mail.ru", "anna@outlook.com"],
    # Elsewhere "+" and "." are the receiving server's to interpret.
    ["anna.k+x@example.com", "annak@example.com", "anna.k@example.com"],
])
def test_different_mailboxes_keep_different_keys(mailboxes: list[str]) -> None:
    keys = [suppression_key(m) for m in mailboxes]
    assert len(set(keys)) == len(mailboxes), dict(zip(mailboxes, keys, strict=True))


def test_a_bounce_of_mail_sent_before_the_icloud_rule_is_still_ours() -> None:
    # A message's tag is made with its recipient's key; mail sent to me.com and mac.com before
    # they were keyed as icloud.com carries the old key's tag, and may bounce after the upgrade.
    signing_key, campaign = os.urandom(32), uuid.uuid4()
    sender = SenderRef(1, 7, "news@example.org", signing_key)
    for address, old_key in (("Anna+x@me.com", "anna@me.com"), ("bob+x@mac.com", "bob+x@mac.com")):
        failed = BouncedRecipient(address, "5.1.1", "550 no such user", True)
        bounce = Bounce([failed], campaign, 3, "rfc3464", message_tag(signing_key, campaign, 3, 7, old_key))
        assert carries_our_tag(sender, bounce), address
        now = message_tag(signing_key, campaign, 3, 7, suppression_key(address))
        assert carries_our_tag(sender, dataclasses.replace(bounce, tag=now)), address
        elsewhere = message_tag(signing_key, campaign, 4, 7, old_key)  # another message's tag
        assert not carries_our_tag(sender, dataclasses.replace(bounce, tag=elsewhere)), address


async def test_entries_kept_under_the_old_icloud_keys_still_match_and_are_counted(
    fresh_db: asyncpg.Connection[Any],
) -> None:
    conn = fresh_db
    await migrate(conn, up_to=23)
    user_id = await conn.fetchval("INSERT INTO users (email) VALUES ('owner@example.com') RETURNING id")
    # Keys as the rule before made them: me.com and mac.com apart from icloud.com, mac.com's +tags kept.
    await conn.executemany(
        "INSERT INTO suppressed (user_id, address, email, reason, created_at)"
        " VALUES ($1, $2, $3, $4, now() - make_interval(days => $5))", [
            (user_id, "anna@me.com", "Anna@me.com", "manual", 3),  # first of her two spellings: kept
            (user_id, "anna@icloud.com", "anna@icloud.com", "unsubscribed", 2),
            (user_id, "bob+news@mac.com", "bob+news@mac.com", "unsubscribed", 1),
            (user_id, "fay@me.com", "fay@me.com", "hard_bounce", 5),  # kept; the later import goes
            (user_id, "fay@icloud.com", "fay@icloud.com", "imported", 4),
            (user_id, "dan@example.com", "dan@example.com", "imported", 1),
        ])
    await conn.executemany("INSERT INTO soft_bounces (user_id, address, count) VALUES ($1, $2, $3)", [
        (user_id, "eve@me.com", 2), (user_id, "eve@icloud.com", 1), (user_id, "gil@mac.com", 1)])
    await migrate(conn)

    rows = await conn.fetch("SELECT address, email, reason FROM suppressed WHERE user_id = $1 ORDER BY address",
                            user_id)
    assert [tuple(r) for r in rows] == [
        ("anna@icloud.com", "Anna@me.com", "manual"), ("bob@icloud.com", "bob+news@mac.com", "unsubscribed"),
        ("dan@example.com", "dan@example.com", "imported"), ("fay@icloud.com", "fay@me.com", "hard_bounce")]
    for spelling in ("anna@mac.com", "Anna+x@me.com", "bob@me.com", "bob+other@mac.com", "fay@mac.com"):
        assert await suppressions.is_suppressed(conn, user_id, spelling), spelling
    found = await suppressions.among(conn, user_id, [fast_key("bob@icloud.com"), fast_key("nobody@me.com")])
    assert found == {"bob@icloud.com"}
    soft = await conn.fetch("SELECT address, count FROM soft_bounces WHERE user_id = $1 ORDER BY address", user_id)
    assert [tuple(r) for r in soft] == [("eve@icloud.com", 2), ("gil@icloud.com", 1)]
    # Counted from what was there (migration 24), and the import dropped as a duplicate uncounted.
    assert await suppressions.by_hand(conn, user_id) == 2  # anna (manual) and dan (imported)


async def exact_by_hand(db: asyncpg.Pool, user_id: int) -> int:
    counted: int = await db.fetchval(
        "SELECT count(*) FROM suppressed WHERE user_id = $1 AND reason IN ('manual', 'imported')", user_id)
    return counted


async def test_the_cap_counts_what_people_add_and_never_refuses_a_person_who_asked_to_stop(
    api: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(suppressions, "MAX_ENTRIES", 5)
    user_id = await user_of(db, auth)
    async with db.acquire() as conn:
        # Bounces and unsubscribes first, more than the cap: they are not what a person added.
        for n in range(4):
            assert await suppressions.add(conn, user_id, [f"gone{n}@example.com"], "hard_bounce") == 1
            assert await suppressions.add(conn, user_id, [f"left{n}@example.com"], "unsubscribed") == 1
    added = await api.post("/v1/suppressions", headers=auth, json={"emails": [f"p{n}@example.com" for n in range(5)]})
    assert added.status_code == 201 and added.json()["added"] == 5, added.text  # the list holds 13

    # Full: one more by hand is refused, in words, and nothing of it stays.
    over = await api.post("/v1/suppressions", headers={**auth, "Accept-Language": "ru"},
                          json={"emails": ["p0@example.com", "one-more@example.com"]})
    assert over.status_code == 400, over.text
    assert over.json()["error"]["code"] == "suppressions_full"
    assert "не больше 5 адресов" in over.json()["error"]["message"] and "уже 5" in over.json()["error"]["message"]
    imported = await api.post("/v1/suppressions/import", headers=auth, content=b"one-more@example.com\n")
    assert imported.status_code == 400 and imported.json()["error"]["code"] == "suppressions_full", imported.text
    assert not await db.fetchval("SELECT 1 FROM suppressed WHERE user_id = $1 AND address = 'one-more@example.com'",
                                 user_id)
    # An address already there is no new entry: adding it again is fine at the cap.
    again = await api.post("/v1/suppressions", headers=auth, json={"emails": ["P0@example.com"]})
    assert again.status_code == 201 and again.json()["added"] == 0, again.text

    # A person who asks to stop, or whose mailbox bounces, is always recorded at the cap.
    async with db.acquire() as conn:
        assert await suppressions.add(conn, user_id, ["asked@example.com"], "unsubscribed") == 1
        assert await suppressions.add(conn, user_id, ["dead@example.com"], "hard_bounce") == 1
        assert await suppressions.add(conn, user_id, ["full@example.com"], "soft_bounce") == 1
        assert await suppressions.by_hand(conn, user_id) == await exact_by_hand(db, user_id) == 5

    # A removal makes room again; the counter follows every write, whatever wrote it.
    assert (await api.delete("/v1/suppressions/p1@example.com", headers=auth)).status_code == 204
    assert (await api.delete("/v1/suppressions/asked@example.com", headers=auth)).status_code == 204
    room = await api.post("/v1/suppressions", headers=auth, json={"emails": ["one-more@example.com"]})
    assert room.status_code == 201 and room.json()["added"] == 1, room.text
    await db.execute("INSERT INTO suppressed (user_id, address, email, reason) VALUES ($1, 'sql@example.com',"
                     " 'sql@example.com', 'imported'), ($1, 'sql2@example.com', 'sql2@example.com', 'unsubscribed')",
                     user_id)
    await db.execute("DELETE FROM suppressed WHERE user_id = $1 AND address IN ('p2@example.com', 'gone0@example.com')",
                     user_id)
    async with db.acquire() as conn:
        assert await suppressions.by_hand(conn, user_id) == await exact_by_hand(db, user_id) == 5


async def test_an_address_added_by_hand_to_a_long_list_reads_one_row_not_the_list(
    api: httpx.AsyncClient, auth: dict[str, str], db: asyncpg.Pool
) -> None:
    # Each hand-added address counted the whole list (count(*) over up to a million entries).
    user_id = await user_of(db, auth)
    entries = 200_000
    await db.execute("INSERT INTO suppressed (user_id, address, email, reason) SELECT $1, a, a, 'imported'"
                     " FROM (SELECT 'listed' || g || '@example.com' AS a FROM generate_series(1, $2) g) s",
                     user_id, entries)
    async with db.acquire() as conn:
        assert await suppressions.by_hand(conn, user_id) == entries
        async with conn.transaction():  # the statistics of one transaction are its own, read at once
            for n in range(5):
                assert await suppressions.add(conn, user_id, [f"by-hand{n}@example.com"], "manual") == 1
            read = await read_in_transaction(conn)
        assert read < 100, read  # a count read 200,000 entries for each
        assert await suppressions.by_hand(conn, user_id) == entries + 5
    one = await api.post("/v1/suppressions", headers=auth, json={"emails": ["through-the-api@example.com"]})
    assert one.status_code == 201 and one.json()["added"] == 1, one.text


async def read_in_transaction(conn: Any) -> int:
    """Entries of `suppressed` this transaction has read so far, scanned or through its indexes."""
    found = await conn.fetchval(
        "SELECT sum(pg_stat_get_xact_tuples_returned(c.oid)) FROM pg_class c WHERE c.oid = 'suppressed'::regclass"
        " OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'suppressed'::regclass)")
    return int(found)

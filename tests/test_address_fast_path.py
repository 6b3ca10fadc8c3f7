"""The plain-address fast path (shared/addresses.py) answers exactly as email-validator does.

Pure logic, so no services: a generated corpus (seeded) of addresses plain and odd — uppercase,
quoted local parts, IDN and Punycode, special-use and numeric top-level domains, label and
address length limits, trailing and doubled dots, RFC 2142 names, display names — is checked both
ways, and the fan-out's JSON of a row's cells against json.dumps.
"""

from __future__ import annotations

import json
import random
import uuid

from email_validator import EmailNotValidError, validate_email

from shared import addresses
from shared.addresses import check_address, normal_address
from shared.contacts import address_key, detect, iter_contacts
from shared.fanout import LoadCounts, fields_json, recipient_records

_LOCAL_CHARS = ("abcxyz", "ABCXYZ", "0189", "._-+", "!#$%&'*/=?^`{|}~", '"', " \\@<>()[],;:", "абвЯё", "é\u0301ß",
                "\x00\t\u200b\u2028")
_LABEL_CHARS = ("abcxyz", "ABCXYZ", "0189", "-", "_", "пример", "例え", "ÉßẞΣ", "。．", "\u200d\u00ad", " @")
_TOPS = ("com", "ru", "RU", "org", "xn--p1ai", "xn--80asehdb", "рф", "c", "co", "123", "1a", "a1", "local", "LOCAL",
         "localhost", "test", "invalid", "onion", "arpa", "in-addr.arpa", "example", "x-y", "-ru", "ru-",
         "xn--zz", "ab--cd", "a" * 63, "a" * 64, "")
_WHOLE = [
    "person1@example.com", "Person.One@Example.COM", "  padded@example.com \t", "a@b.c", "a@b.co", "a@b.1",
    "a@b", "a@-b.com", "a@b-.com", "a@b..com", "a@.b.com", "a@b.com.", "a.@b.com", ".a@b.com", "a..b@c.com",
    '"a b"@example.com', '"ab"@example.com', '"a\\"b"@example.com', "Ann <ann@example.com>", "<ann@example.com>",
    "a@[192.0.2.1]", "a@xn--e1afmkfd.xn--p1ai", "a@пример.рф", "а@example.com", "Postmaster@Example.com",
    "INFO@example.com", "info@example.com", "a@sub.example.local", "a@host.localhost", "a@a.test", "a@b.TEST",
    "a@ab--cd.com", "a@xn--zz.com", "a--b@example.com", "a@b.c0m", "a@b.com\u200b", "a＠b.com", "a﹫b.com",
    "a@b@c.com", "a@b.com,c@d.com", "a@b.com c", "mailto:a@b.com", "a@" + "b" * 63 + ".com", "a@" + "b" * 64 + ".com",
    "a@" + ".".join(["b" * 63] * 3) + ".com", "a@" + ".".join(["b" * 63] * 4) + ".com", "l" * 64 + "@example.com",
    "l" * 65 + "@example.com", "l" * 200 + "@example.com", "l" * 240 + "@" + "d" * 9 + ".com", "",
]


def _oracle(raw: str) -> tuple[str | None, str | None]:
    """check_address as it was, all by email-validator."""
    candidate = raw.strip()
    if not candidate:
        return None, "empty"
    try:
        info = validate_email(candidate, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        return None, str(exc)
    return f"{info.local_part}@{info.ascii_domain or info.domain}", None


def _piece(rng: random.Random, alphabets: tuple[str, ...], longest: int) -> str:
    common = alphabets[:3]  # mostly plain, so that the odd characters sit inside otherwise plain addresses
    length = rng.choice((0, 1, 2, 5, 8, 12, longest)) if rng.random() < 0.2 else rng.randint(1, 10)
    return "".join(rng.choice(rng.choice(common if rng.random() < 0.9 else alphabets)) for _ in range(length))


def _address(rng: random.Random) -> str:
    local = ".".join(_piece(rng, _LOCAL_CHARS, 70) for _ in range(rng.choice((1, 1, 1, 2, 3))))
    if rng.random() < 0.05:
        local = f'"{local}"'
    labels = [_piece(rng, _LABEL_CHARS, 64) for _ in range(rng.choice((0, 1, 1, 1, 2, 3)))]
    domain = ".".join([*labels, rng.choice(_TOPS)])
    address = f"{local}@{domain}"
    roll = rng.random()
    if roll < 0.03:
        address = address.replace("@", rng.choice(("", "@@", " @", "＠")), 1)
    elif roll < 0.06:
        address += rng.choice((".", " ", ">", "\u0301", "\r"))
    elif roll < 0.08:
        address = rng.choice(("Ann <", "<", " ", ".")) + address + rng.choice((">", "", "  "))
    elif roll < 0.1:
        address = address.upper()
    return address


def test_the_fast_path_answers_as_email_validator_does() -> None:
    rng = random.Random(13)
    corpus = _WHOLE + [_address(rng) for _ in range(50_000)]
    fast = 0
    for raw in corpus:
        expected = _oracle(raw)
        checked = check_address(raw)
        assert (checked.normalized, checked.reason) == expected, raw
        assert normal_address(raw) == expected[0], raw
        fast += addresses._plain(raw.strip()) is not None
    # Not vacuous: thousands take the fast path, thousands of valid ones do not, most are invalid.
    valid = sum(_oracle(raw)[0] is not None for raw in corpus)
    assert fast > 3_000 and valid - fast > 3_000 and len(corpus) - valid > 25_000, (fast, valid)


def test_the_fast_path_leaves_the_odd_cases_to_email_validator() -> None:
    for raw in ('"ab"@example.com', "a@пример.рф", "a@xn--e1afmkfd.xn--p1ai", "Postmaster@Example.com",
                "a@host.local", "a@b.TEST", "a@b.com.", "a@" + "b" * 64 + ".com", "Ann <ann@example.com>"):
        assert addresses._plain(raw) is None, raw
    assert addresses._plain("Person.One@Sub.Example.COM") == "Person.One@sub.example.com"


def test_row_fields_json_is_json_dumps() -> None:
    rng = random.Random(7)
    alphabet = "aZ 09\"\\/\n\r\t\x00\x01\x1f\x7f\u00e9\u2028\u2029абв😀\ufeff<>&'"
    for _ in range(5_000):
        fields = {"".join(rng.choices(alphabet, k=rng.randint(0, 6))): "".join(rng.choices(alphabet, k=rng.randint(0, 30)))
                  for _ in range(rng.randint(0, 5))}
        assert fields_json(fields) == json.dumps(fields, ensure_ascii=False)


def test_the_fan_out_writes_what_email_validator_and_json_dumps_would() -> None:
    rng = random.Random(5)
    addresses_written = [rng.choice((_address(rng).replace("\x00", ""), f"p{rng.randint(0, 300)}@Example.com",
                                     "P1@EXAMPLE.COM")) for _ in range(3_000)]
    rows = [f'"{a.replace(chr(34), chr(34) * 2)}",Имя {n} "x",{rng.random()}' for n, a in enumerate(addresses_written)]
    data = ("email,name,score\r\n" + "\r\n".join(rows) + "\r\n").encode()
    found = detect(data[:65536], complete=False)
    contacts = list(iter_contacts([data[i:i + 4096] for i in range(0, len(data), 4096)], found.dialect, found.columns))
    campaign = uuid.uuid4()
    counts = LoadCounts()
    written = list(recipient_records(iter(contacts), campaign, counts, set()))

    expected, seen, duplicates = [], set(), 0
    for contact in contacts:
        email = check_address(contact.email).normalized
        if email is None:
            continue
        if address_key(email) in seen:
            duplicates += 1
            continue
        seen.add(address_key(email))
        expected.append((campaign, len(expected) + 1, email, json.dumps(contact.fields, ensure_ascii=False), "pending", None))
    assert written == expected
    assert (counts.rows, counts.duplicates, counts.position) == (len(contacts), duplicates, len(expected))
    assert duplicates > 100 and len(expected) > 300

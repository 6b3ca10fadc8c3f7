"""Pure logic: reply classification, crypto, credentials, work messages, presets, SSRF checks."""

from __future__ import annotations

import uuid

import pytest

from shared.credentials import api_secret_matches, hash_password, new_api_key, split_api_key, verify_password
from shared.crypto import DecryptionError, LocalKeyProvider, open_sealed, seal
from shared.errors import InputError
from shared.mail.messenger import Outcome, SmtpAccount, classify
from shared.netguard import HostRefused, is_public, vet_host
from shared.smtp_presets import preset_for_address, security_for_port
from shared.work import CampaignCommand, DeliveryBatch, MalformedWork, batch_ranges


@pytest.mark.parametrize(
    ("code", "text", "stage", "expected"),
    [
        (250, "ok", "data", Outcome.SENT),
        (451, "4.3.0 Temporary failure", "data", Outcome.RETRY),
        (421, "4.7.0 Try again later, closing connection", "data", Outcome.PAUSE_SENDER),
        (450, "4.2.1 too many messages, slow down", "rcpt", Outcome.PAUSE_SENDER),
        (550, "5.4.5 Daily user sending limit exceeded", "data", Outcome.PAUSE_SENDER),
        (550, "5.1.1 The email account does not exist", "rcpt", Outcome.FAILED),
        (554, "5.7.1 Message rejected", "data", Outcome.FAILED),
        (535, "5.7.8 Username and Password not accepted", "auth", Outcome.PAUSE_CAMPAIGN),
        (553, "5.7.1 Sender address rejected: not owned by user", "mail", Outcome.PAUSE_CAMPAIGN),
        (452, "4.5.3 Too many recipients", "rcpt", Outcome.RETRY),
    ],
)
def test_classify(code: int, text: str, stage: str, expected: Outcome) -> None:
    assert classify(code, text, stage=stage) is expected


async def test_sealed_secret_opens_only_in_its_context() -> None:
    provider = LocalKeyProvider(b"k" * 32)
    blob = await seal(provider, "s3cret пароль", "user:1")
    assert b"s3cret" not in blob
    assert await open_sealed(provider, blob, "user:1") == "s3cret пароль"
    with pytest.raises(DecryptionError):
        await open_sealed(provider, blob, "user:2")
    with pytest.raises(DecryptionError):
        await open_sealed(LocalKeyProvider(b"x" * 32), blob, "user:1")
    tampered = blob.replace(b'"data":"', b'"data":"AA')
    with pytest.raises(DecryptionError):
        await open_sealed(provider, tampered, "user:1")


def test_account_repr_hides_the_password() -> None:
    account = SmtpAccount("smtp.example.com", 465, "tls", "me", "hunter2")
    assert "hunter2" not in repr(account) and "hunter2" not in str(account)


def test_api_keys_and_passwords() -> None:
    key = new_api_key()
    parts = split_api_key(key.token)
    assert parts is not None and parts[0] == key.prefix
    assert api_secret_matches(parts[1], key.secret_hash)
    assert not api_secret_matches(parts[1] + "x", key.secret_hash)
    assert split_api_key("sp_short_x") is None and split_api_key("nope") is None
    hashed = hash_password("correct horse")
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "correct horse") and not verify_password(hashed, "wrong")


def test_work_messages_round_trip_and_reject_garbage() -> None:
    batch = DeliveryBatch(uuid.uuid4(), 9, 1, 50)
    assert DeliveryBatch.decode(batch.encode()) == batch
    assert batch.key == b"9"
    spread = DeliveryBatch(uuid.uuid4(), 9, 51, 100, spread=True)
    assert DeliveryBatch.decode(spread.encode()) == spread and spread.key == b"9:51"
    command = CampaignCommand(uuid.uuid4(), "resume")
    assert CampaignCommand.decode(command.encode()) == command
    for garbage in (b"", b"not json", b"{}", b'{"campaign_id": "x"}'):
        with pytest.raises(MalformedWork):
            DeliveryBatch.decode(garbage)
        with pytest.raises(MalformedWork):
            CampaignCommand.decode(garbage)
    with pytest.raises(MalformedWork):
        DeliveryBatch.decode(DeliveryBatch(uuid.uuid4(), 1, 5, 4).encode())


def test_batch_ranges_cover_everything_once() -> None:
    assert batch_ranges(1, 10, 4) == [(1, 4), (5, 8), (9, 10)]
    assert batch_ranges(1, 3, 50) == [(1, 3)]
    covered = [p for a, b in batch_ranges(1, 1001, 100) for p in range(a, b + 1)]
    assert covered == list(range(1, 1002))


@pytest.mark.parametrize(
    ("email", "host", "port", "security"),
    [
        ("a@gmail.com", "smtp.gmail.com", 465, "tls"),
        ("a@yandex.ru", "smtp.yandex.ru", 465, "tls"),
        ("a@Yandex.com", "smtp.yandex.ru", 465, "tls"),
        ("a@mail.ru", "smtp.mail.ru", 465, "tls"),
        ("a@outlook.com", "smtp-mail.outlook.com", 587, "starttls"),
        ("a@hotmail.com", "smtp-mail.outlook.com", 587, "starttls"),
    ],
)
def test_presets_by_domain(email: str, host: str, port: int, security: str) -> None:
    preset = preset_for_address(email)
    assert preset is not None
    assert (preset.host, preset.port, preset.security) == (host, port, security)


def test_unknown_domain_has_no_preset_and_ports_imply_security() -> None:
    assert preset_for_address("a@corp.example") is None
    assert security_for_port(465) == "tls" and security_for_port(587) == "starttls"


@pytest.mark.parametrize(
    ("address", "public"),
    [("8.8.8.8", True), ("127.0.0.1", False), ("10.1.2.3", False), ("192.168.0.1", False),
     ("169.254.169.254", False), ("100.64.0.1", False), ("::1", False), ("::ffff:127.0.0.1", False),
     ("fd00::1", False), ("2001:4860:4860::8888", True), ("0.0.0.0", False),  # noqa: S104
     ("64:ff9b::7f00:1", False), ("64:ff9b::808:808", True), ("2002:7f00:1::", False), ("2002:808:808::", True),
     ("64:ff9b:1::a00:1", False)],
)
def test_is_public(address: str, public: bool) -> None:
    assert is_public(address) is public


async def test_private_hosts_are_refused_unless_allowed() -> None:
    for host in ("127.0.0.1", "localhost", "169.254.169.254"):
        with pytest.raises(HostRefused) as caught:
            await vet_host(host, 25, allow_private=False)
        assert caught.value.code == "private"
    allowed = await vet_host("127.0.0.1", 25, allow_private=True)
    assert allowed[0].address == "127.0.0.1"
    with pytest.raises(HostRefused) as caught:
        await vet_host("no-such-host.invalid", 25, allow_private=True)
    assert caught.value.code == "dns"


def test_input_errors_speak_russian_and_english() -> None:
    error = InputError("required", "message")
    assert error.message("en") == "The field 'message' is required."
    assert error.message("ru") == "Поле «message» обязательно."


def test_exported_cells_cannot_run_as_formulas() -> None:
    from shared.export import csv_lines, safe_cell

    assert [safe_cell(v) for v in ("=1+1", "+7 999", "-x", "@SUM(A1)", "ok", None, 5)] == [
        "'=1+1", "'+7 999", "'-x", "'@SUM(A1)", "ok", "", "5"]
    text = "".join(csv_lines([["=HYPERLINK(\"http://evil\")", "a,b"]], header=["x", "y"]))
    assert text == "x,y\r\n\"'=HYPERLINK(\"\"http://evil\"\")\",\"a,b\"\r\n"

"""A saved password goes only to the server it was entered for (issue 11, attack M5): changing a
sender's IMAP server (host or port) without typing the password again is refused, so whoever can
change the settings cannot have Sendpy log in to their own server with the stored password."""

from __future__ import annotations

import httpx
import pytest

from sendpy.devstack.imap import DovecotServer
from sendpy.devstack.smtp_sink import SmtpSink
from sendpy.devstack.tls import LocalCertificates
from tests.helpers import make_sender
from tests.hostile_imap import hostile_imap
from tests.imap import ImapUser


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def test_a_new_imap_server_needs_the_password_again(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink, dovecot: DovecotServer,
    imap_user: ImapUser, certs: LocalCertificates,
) -> None:
    sender = await make_sender(api, auth, clean_sink, password="the smtp password")
    imap = f"/v1/senders/{sender['id']}/imap"
    ru = {**auth, "Accept-Language": "ru"}
    saved = await api.put(imap, headers=auth, json={"imap_host": "127.0.0.1", "imap_port": dovecot.port,
                                                    "imap_username": imap_user.name,
                                                    "imap_password": imap_user.password})
    assert saved.status_code == 200 and saved.json()["verified"], saved.text

    # The same server: the password is kept (no need to send it), settings change freely.
    kept = await api.put(imap, headers=auth, json={"imap_host": "127.0.0.1", "imap_port": dovecot.port,
                                                   "imap_username": imap_user.name, "imap_move_bounces": True})
    assert kept.status_code == 200 and kept.json()["verified"], kept.text

    with hostile_imap(certs, "drip") as thief:
        # Another port, another host, with the IMAP password kept or the SMTP one: refused, in
        # words, and the thief's server is never contacted.
        for body in ({"imap_host": "127.0.0.1", "imap_port": thief.port},
                     {"imap_host": "localhost", "imap_port": thief.port, "imap_password": ""},
                     {"imap_host": "localhost", "imap_port": thief.port, "imap_password": None}):
            refused = await api.put(imap, headers=ru, json={**body, "imap_username": imap_user.name})
            assert refused.status_code == 400, (body, refused.text)
            error = refused.json()["error"]
            assert (error["code"], error["field"]) == ("imap_password_required", "imap_password"), error
            assert f"IMAP-сервер изменён на {body['imap_host']}:{thief.port}: введите пароль IMAP" in error["message"]
        english = await api.put(imap, headers=auth, json={"imap_host": "127.0.0.1", "imap_port": thief.port})
        assert "enter the IMAP password again" in english.json()["error"]["message"]
        assert thief.accepted == 0
    status = (await api.get(imap, headers=auth)).json()
    assert (status["host"], status["port"], status["verified"]) == ("127.0.0.1", dovecot.port, True), status

    # Settings pointed at a server with a password of its own cannot then switch, on that server,
    # to the SMTP password: it never goes anywhere but the SMTP host or the provider's servers.
    with hostile_imap(certs, "fetch") as thief:
        own = await api.put(imap, headers=auth, json={"imap_host": "localhost", "imap_port": thief.port,
                                                      "imap_password": "thief's own"})
        assert own.status_code == 200 and own.json()["verified"], own.text
        switched = await api.put(imap, headers=auth, json={"imap_host": "localhost", "imap_port": thief.port,
                                                           "imap_password": None})
        assert switched.status_code == 400, switched.text
        assert switched.json()["error"]["code"] == "imap_password_required"
        assert thief.logins and not any(b"the smtp password" in line for line in thief.logins), thief.logins

    # The SMTP password may go to the SMTP server's own host (a company server doing both).
    smtp_host = await api.put(imap, headers=auth, json={"imap_host": "127.0.0.1", "imap_port": clean_sink.port,
                                                        "imap_password": None})
    assert smtp_host.status_code == 422, smtp_host.text  # accepted, checked live (the sink speaks no IMAP)
    # A password typed with the new server is what it is for.
    typed = await api.put(imap, headers=auth, json={"imap_host": "localhost", "imap_port": dovecot.port,
                                                    "imap_username": imap_user.name,
                                                    "imap_password": imap_user.password})
    assert typed.status_code == 200 and typed.json()["verified"], typed.text


async def test_first_imap_settings_send_the_smtp_password_only_to_the_providers_or_smtp_server(
    api: httpx.AsyncClient, auth: dict[str, str], clean_sink: SmtpSink,
) -> None:
    sender = await make_sender(api, auth, clean_sink)
    refused = await api.put(f"/v1/senders/{sender['id']}/imap", headers=auth,
                            json={"imap_host": "localhost", "imap_port": 993})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "imap_password_required", refused.text
    status = (await api.get(f"/v1/senders/{sender['id']}/imap", headers=auth)).json()
    assert status["host"] is None

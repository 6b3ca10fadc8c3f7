"""The signed ids in our mail (shared/unsubscribe.py): the sealed unsubscribe token that names the
account and the address, and the keyed tag in each Message-ID. Pure unit tests; the same ids
against the real stack are in test_bounce_forgery.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid

from shared.mail.compose import CampaignContent, CompiledCampaign
from shared.suppressions import suppression_key
from shared.unsubscribe import Target, Unsubscriber, message_tag, read_token

KEY = b"k" * 32
CAMPAIGN = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")


def test_a_sealed_token_names_account_and_address_and_does_not_show_it() -> None:
    links = Unsubscriber(KEY, "https://mail.example.org", CAMPAIGN, 42)
    token = links.token(7, "Мария@xn--e1afmkfd.xn--p1ai")
    assert read_token(KEY, token) == Target(CAMPAIGN, 7, 42, "Мария@xn--e1afmkfd.xn--p1ai")
    assert token == links.token(7, "Мария@xn--e1afmkfd.xn--p1ai")  # the same link every time it is rendered
    body = token.partition(".")[2]
    sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    assert b"xn--e1afmkfd" not in sealed and "Мария".encode() not in sealed
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", token)  # safe in a URL path and a header
    # Any change, another key, garbage, or a very long token: not a link of ours.
    assert read_token(KEY, token[:-2] + ("AA" if token[-2:] != "AA" else "BB")) is None
    assert read_token(b"another key", token) is None
    for junk in ("2.", "2.!!!", "2." + "A" * 40, "x" * 5000, "", ".", "2.2.2"):
        assert read_token(KEY, junk) is None


def test_links_signed_before_the_sealed_format_still_read() -> None:
    payload = CAMPAIGN.bytes + (5).to_bytes(4, "big")
    signature = hmac.new(KEY, payload, hashlib.sha256).digest()[:16]
    old = (base64.urlsafe_b64encode(payload).decode().rstrip("=") + "."
           + base64.urlsafe_b64encode(signature).decode().rstrip("="))
    assert read_token(KEY, old) == Target(CAMPAIGN, 5)  # no account, no address: its row decides
    assert read_token(KEY, old[:-1] + ("A" if old[-1] != "A" else "B")) is None


def test_the_message_id_carries_a_tag_bound_to_recipient_and_account() -> None:
    links = Unsubscriber(KEY, "https://mail.example.org", CAMPAIGN, 42)
    compiled = CompiledCampaign(CampaignContent(str(CAMPAIGN), "news@Example.org", "", "Hi", "<p>x</p>"),
                                unsubscriber=links)
    message_id = compiled.message_id(3, "Ann.Lee@example.com")
    found = re.fullmatch(rf"<{CAMPAIGN}\.3\.([a-z2-7]{{16}})@example\.org>", message_id)
    assert found, message_id
    tag = found.group(1)
    assert tag == message_tag(KEY, CAMPAIGN, 3, 42, suppression_key("ann.lee@EXAMPLE.com"))
    # Each part of what it names changes it.
    assert tag != message_tag(KEY, CAMPAIGN, 4, 42, "ann.lee@example.com")
    assert tag != message_tag(KEY, CAMPAIGN, 3, 43, "ann.lee@example.com")
    assert tag != message_tag(KEY, CAMPAIGN, 3, 42, "bob@example.com")
    assert tag != message_tag(b"other", CAMPAIGN, 3, 42, "ann.lee@example.com")
    # Rendered: the header and the links are the recipient's own.
    raw = compiled.render(3, "Ann.Lee@example.com", {})
    assert f"\r\nMessage-ID: {message_id}\r\n".encode() in raw
    link = re.search(rb"List-Unsubscribe: <https://mail\.example\.org/u/([^>]+)>", raw)
    assert link and read_token(KEY, link.group(1).decode()) == Target(CAMPAIGN, 3, 42, "Ann.Lee@example.com")
    # Without a key (nothing to sign with) there is no tag, and no report will ever match.
    bare = CompiledCampaign(CampaignContent(str(CAMPAIGN), "news@example.org", "", "Hi", "<p>x</p>"))
    assert bare.message_id(3, "ann@example.com") == f"<{CAMPAIGN}.3@example.org>"

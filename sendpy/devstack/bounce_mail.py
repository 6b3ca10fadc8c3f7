"""The local stack's bounces: mail to anyone @bounce.example.net is accepted by the SMTP sink (as a real
server accepts mail it bounces later) and a delivery-status notification lands in the sender's
own mailbox in the local Dovecot — the mailbox whose login and password the sender used for SMTP,
which is also what Sendpy's IMAP settings use by default. So a person can watch a bounce arrive
and be recorded, end to end."""

from __future__ import annotations

import logging
import time
from email.parser import BytesHeaderParser

from sendpy.devstack.imap import DovecotServer

# RFC 2606 reserves example.net; `.test` would be refused as an address before any mail went out.
BOUNCE_DOMAIN = "bounce.example.net"
log = logging.getLogger("sendpy.sink")


def delivery_status_notification(from_email: str, recipient: str, message_id: str, *, status: str = "5.1.1",
                                 action: str = "failed",
                                 diagnostic: str = "550 5.1.1 The email account that you tried to reach does not exist"
                                 ) -> bytes:
    """An RFC 3464 report as Postfix writes one, returning the original message's headers."""
    return (
        f"From: MAILER-DAEMON@mx.{BOUNCE_DOMAIN} (Mail Delivery System)\r\nTo: {from_email}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-{time.time_ns()}@mx.{BOUNCE_DOMAIN}>\r\n"
        "MIME-Version: 1.0\r\nAuto-Submitted: auto-replied\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n\r\n"
        f"--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.{BOUNCE_DOMAIN}\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\nAction: {action}\r\n"
        f"Status: {status}\r\nDiagnostic-Code: smtp; {diagnostic}\r\n\r\n"
        "--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {from_email}\r\nTo: {recipient}\r\nSubject: (returned)\r\nMessage-ID: {message_id}\r\n\r\n--b1--\r\n"
    ).encode()


class BounceMailboxes:
    def __init__(self, dovecot: DovecotServer) -> None:
        self.dovecot = dovecot

    def deliver(self, login: str, password: str, from_email: str, recipients: tuple[str, ...], message: bytes) -> int:
        """Bounce the recipients at BOUNCE_DOMAIN into `login`'s mailbox; returns how many."""
        bounced = [r for r in recipients if r.lower().endswith("@" + BOUNCE_DOMAIN)]
        if not bounced:
            return 0
        name = login.lower()
        if self.dovecot.passwords.get(name) != password:
            self.dovecot.add_user(name, password)
        message_id = str(BytesHeaderParser().parsebytes(message[:65536]).get("Message-ID") or "")
        for recipient in bounced:
            self.dovecot.append(name, delivery_status_notification(from_email, recipient, message_id))
        return len(bounced)

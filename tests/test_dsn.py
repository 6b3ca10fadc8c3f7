"""The bounce recogniser (shared/bounces/dsn.py): one realistic sample per shape, and the mail that
must not be taken for a bounce. Pure unit tests: every sample is written here, nothing is fetched.

Samples follow the published shapes of each MTA/provider's reports; addresses use example domains
and the RFC 5737 documentation IP ranges. Our own messages carry the Message-ID
<1b4e28ba-2fa1-11d2-883f-0016d3cca427.{position}@example.org>.
"""

from __future__ import annotations

import base64
import random
import time
import uuid

import pytest

from shared.bounces.dsn import MAX_INPUT_BYTES, Bounce, BouncedRecipient, parse_bounce

CAMPAIGN = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")


def our_headers(position: int, to: str, *, message_id: bool = True, tag: bool = True) -> str:
    """The headers of a message Sendpy sent, as a bounce returns them."""
    lines = [
        "Return-Path: <news@example.org>",
        "Received: from [192.0.2.10] (unknown [192.0.2.10])\n\tby smtp.example.org (Postfix) with ESMTPSA id 4VfK1b2c3d\n\tfor <"
        + to
        + ">; Tue, 14 May 2024 07:02:09 +0000 (UTC)",
        "From: Example News <news@example.org>",
        f"To: {to}",
        "Subject: May newsletter",
        "Date: Tue, 14 May 2024 07:02:09 +0000",
    ]
    if message_id:
        lines.append(f"Message-ID: <{CAMPAIGN}.{position}@example.org>")
    if tag:
        lines.append(f"X-Sendpy-Recipient: {CAMPAIGN}.{position}")
    lines += ["List-Unsubscribe: <https://example.org/u/abc>", "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    return "\n".join(lines) + "\n"


def crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def only(bounce: Bounce | None) -> BouncedRecipient:
    assert bounce is not None
    assert len(bounce.recipients) == 1, bounce.recipients
    return bounce.recipients[0]


# ---------------------------------------------------------------------------------------------
# RFC 3464


POSTFIX_DSN_HARD = (
    """Return-Path: <>
Received: by mail.example.org (Postfix)
\tid 8C1E922C0F4; Tue, 14 May 2024 10:02:11 +0300 (MSK)
Date: Tue, 14 May 2024 10:02:11 +0300 (MSK)
From: MAILER-DAEMON@mail.example.org (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: news@example.org
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4F1A22C0F3.1715670131/mail.example.org"
Content-Transfer-Encoding: 8bit
Message-Id: <20240514070211.8C1E922C0F4@mail.example.org>

This is a MIME-encapsulated message.

--4F1A22C0F3.1715670131/mail.example.org
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mail.example.org.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

For further assistance, please send mail to postmaster.

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system

<ghost@example.net>: host mx1.example.net[198.51.100.7] said: 550 5.1.1
    <ghost@example.net>: Recipient address rejected: User unknown in virtual
    mailbox table (in reply to RCPT TO command)

--4F1A22C0F3.1715670131/mail.example.org
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.org
X-Postfix-Queue-ID: 4F1A22C0F3
X-Postfix-Sender: rfc822; news@example.org
Arrival-Date: Tue, 14 May 2024 10:02:10 +0300 (MSK)

Final-Recipient: rfc822; ghost@example.net
Original-Recipient: rfc822;ghost@example.net
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx1.example.net
Diagnostic-Code: smtp; 550 5.1.1 <ghost@example.net>: Recipient address
    rejected: User unknown in virtual mailbox table

--4F1A22C0F3.1715670131/mail.example.org
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers
Content-Transfer-Encoding: 8bit

"""
    + our_headers(17, "ghost@example.net", tag=False)
    + """
--4F1A22C0F3.1715670131/mail.example.org--
"""
)


def test_rfc3464_hard_bounce() -> None:
    bounce = parse_bounce(POSTFIX_DSN_HARD.encode())
    failed = only(bounce)
    assert bounce is not None and bounce.shape == "rfc3464"
    assert failed.address == "ghost@example.net"
    assert failed.status == "5.1.1"
    assert failed.permanent is True
    assert failed.diagnostic == (
        "550 5.1.1 <ghost@example.net>: Recipient address rejected: User unknown in virtual mailbox table"
    )
    assert (bounce.campaign_id, bounce.position) == (CAMPAIGN, 17)


POSTFIX_DSN_DELAYED = (
    """From: MAILER-DAEMON@mail.example.org (Mail Delivery System)
Subject: Delayed Mail (still being retried)
To: news@example.org
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="9C3F122C0F7.1715684530/mail.example.org"

--9C3F122C0F7.1715684530/mail.example.org
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mail.example.org.

####################################################################
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
####################################################################

Your message could not be delivered for more than 4 hour(s).
It will be retried until it is 5 day(s) old.

For further assistance, please send mail to postmaster.

                   The mail system

<slow@example.com>: connect to mx.example.com[203.0.113.25]:25: Connection
    timed out

--9C3F122C0F7.1715684530/mail.example.org
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.org
X-Postfix-Queue-ID: 9C3F122C0F7
X-Postfix-Sender: rfc822; news@example.org
Arrival-Date: Tue, 14 May 2024 06:01:00 +0300 (MSK)

Final-Recipient: rfc822; slow@example.com
Original-Recipient: rfc822;slow@example.com
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mx.example.com[203.0.113.25]:25:
    Connection timed out
Will-Retry-Until: Sun, 19 May 2024 06:01:00 +0300 (MSK)

--9C3F122C0F7.1715684530/mail.example.org
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

"""
    + our_headers(3, "slow@example.com")
    + """
--9C3F122C0F7.1715684530/mail.example.org--
"""
)


def test_rfc3464_soft_delayed() -> None:
    bounce = parse_bounce(POSTFIX_DSN_DELAYED.encode())
    delayed = only(bounce)
    assert bounce is not None and bounce.shape == "rfc3464"
    assert delayed.address == "slow@example.com"
    assert delayed.status == "4.4.1"
    assert delayed.permanent is False and delayed.delayed is True  # a notice, not a bounce (record.py)
    assert delayed.diagnostic == "connect to mx.example.com[203.0.113.25]:25: Connection timed out"
    assert (bounce.campaign_id, bounce.position) == (CAMPAIGN, 3)


# Sendmail-style, CRLF, three recipients: no blank line before the second block, a generic
# Status 5.0.0 beside a specific Diagnostic-Code, a 4.x.x status on a failed recipient (the MTA
# gave up retrying), one delivered recipient, and the original as message/rfc822 carrying only
# our X-Sendpy-Recipient header.
SENDMAIL_DSN_MULTI = crlf(
    """From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.org>
To: <news@example.org>
Subject: Returned mail: see transcript for details
MIME-Version: 1.0
Content-Type: multipart/report; report-type="delivery-status";
    boundary="44F2Aj9S012345.1715670200/relay.example.org"
Auto-Submitted: auto-generated (failure)

This is a MIME-encapsulated message

--44F2Aj9S012345.1715670200/relay.example.org

The original message was received at Tue, 14 May 2024 10:03:19 +0300
from smtp.example.org [192.0.2.10]

   ----- The following addresses had permanent fatal errors -----
<old.friend@example.com>
    (reason: 550 5.1.1 <old.friend@example.com>... User unknown)
<Full.Box@Example.COM>
    (reason: 452 4.2.2 Mailbox full)

--44F2Aj9S012345.1715670200/relay.example.org
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.example.org
Received-From-MTA: DNS; smtp.example.org
Arrival-Date: Tue, 14 May 2024 10:03:19 +0300

Original-Recipient: rfc822;Old.Friend@example.com
Final-Recipient: RFC822; old.friend@example.com
Action: failed
Status: 5.0.0
Remote-MTA: DNS; mx.example.com
Diagnostic-Code: SMTP; 550 5.1.1 <old.friend@example.com>... User unknown
Last-Attempt-Date: Tue, 14 May 2024 10:03:20 +0300
Final-Recipient: RFC822; <Full.Box@Example.COM>
Action: failed (gave up)
Status: 4.2.2
Diagnostic-Code: SMTP; 452 4.2.2 Mailbox full

Final-Recipient: rfc822; happy@example.com
Action: delivered (to mailbox)
Status: 2.0.0

--44F2Aj9S012345.1715670200/relay.example.org
Content-Type: message/rfc822

"""
    + our_headers(41, "old.friend@example.com", message_id=False)
    + """
Hello!

--44F2Aj9S012345.1715670200/relay.example.org--
"""
)


def test_rfc3464_multiple_recipients_folded_crlf() -> None:
    bounce = parse_bounce(SENDMAIL_DSN_MULTI.encode())
    assert bounce is not None and bounce.shape == "rfc3464"
    assert [r.address for r in bounce.recipients] == ["Old.Friend@example.com", "Full.Box@Example.COM"]
    unknown, full = bounce.recipients
    assert (unknown.status, unknown.permanent) == ("5.1.1", True)  # 5.0.0 refined by the diagnostic
    assert unknown.diagnostic == "550 5.1.1 <old.friend@example.com>... User unknown"
    assert (full.status, full.permanent, full.delayed) == ("4.2.2", False, False)  # failed, a temporary reason
    assert (bounce.campaign_id, bounce.position) == (CAMPAIGN, 41)


OFFICE365_DSN = (
    """From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@example.org>
To: <news@example.org>
Subject: Undeliverable: May newsletter
Auto-Submitted: auto-replied
X-MS-Exchange-Message-Is-Ndr:
Content-Language: en-US
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="_000_b1c2d3e4f5a6_"

--_000_b1c2d3e4f5a6_
Content-Type: multipart/alternative; differences=Content-Type;
\tboundary="_001_b1c2d3e4f5a6_"

--_001_b1c2d3e4f5a6_
Content-Type: text/plain; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable

Your message to nobody@contoso.example couldn't be delivered.

nobody wasn't found at contoso.example.

news            Office 365      nobody
Action Required                 Recipient

Unknown To address

How to Fix It
The address may be misspelled or may not exist. Try one or more of the foll=
owing:

Diagnostic information for administrators:

Generating server: AM0PR01MB1234.eurprd01.prod.outlook.com

nobody@contoso.example
Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipien=
t not found by SMTP address lookup'

Original message headers:

"""
    + our_headers(5, "nobody@contoso.example")
    + """
--_001_b1c2d3e4f5a6_
Content-Type: text/html; charset="us-ascii"

<html><body><p>Your message to <a href=3D"mailto:nobody@contoso.example">nobody@contoso.example</a> couldn't be delivered.</p></body></html>

--_001_b1c2d3e4f5a6_--

--_000_b1c2d3e4f5a6_
Content-Type: message/delivery-status

Reporting-MTA: dns;AM0PR01MB1234.eurprd01.prod.outlook.com
Received-From-MTA: dns;smtp.example.org
Arrival-Date: Tue, 14 May 2024 07:02:12 +0000

Original-Recipient: rfc822;nobody@contoso.example
Final-Recipient: rfc822;nobody@contoso.example
Action: failed
Status: 5.1.10
Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup

--_000_b1c2d3e4f5a6_
Content-Type: message/rfc822

"""
    + our_headers(5, "nobody@contoso.example")
    + """
Hello

--_000_b1c2d3e4f5a6_--
"""
)


def test_office365_report_is_rfc3464() -> None:
    bounce = parse_bounce(OFFICE365_DSN.encode())
    failed = only(bounce)
    assert bounce is not None and bounce.shape == "rfc3464"
    assert (failed.address, failed.status, failed.permanent) == ("nobody@contoso.example", "5.1.10", True)
    assert failed.diagnostic.startswith("550 5.1.10 RESOLVER.ADR.RecipientNotFound")
    assert (bounce.campaign_id, bounce.position) == (CAMPAIGN, 5)


# ---------------------------------------------------------------------------------------------
# Plain-text shapes


EXCHANGE_NDR = crlf(
    """From: postmaster@corp.example.com
To: news@example.org
Subject: Undeliverable: May newsletter
Date: Tue, 14 May 2024 07:03:00 +0000
Message-ID: <a1b2c3d4e5f6@EXCH01.corp.example.com>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: 7bit

Delivery has failed to these recipients or groups:

Ivan Petrov (ivan.petrov@corp.example.com)
The e-mail address you entered couldn't be found. Please check the recipient's e-mail address and try to resend the message. If the problem continues, please contact your helpdesk.

archive@corp.example.com
The recipient's mailbox is full and can't accept messages now. Please try resending this message later, or contact the recipient directly.

Diagnostic information for administrators:

Generating server: EXCH01.corp.example.com

ivan.petrov@corp.example.com
#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##

archive@corp.example.com
#554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded ##

Original message headers:

"""
    + our_headers(8, "ivan.petrov@corp.example.com")
)

EXCHANGE_2003_NDR = """From: System Administrator <postmaster@old.example.com>
To: news@example.org
Subject: Undeliverable: May newsletter
Content-Type: text/plain; charset="windows-1252"

Your message did not reach some or all of the intended recipients.

      Subject:\tMay newsletter
      Sent:\t5/14/2024 10:02 AM

The following recipient(s) cannot be reached:

      'Jane.Doe@old.example.com' on 5/14/2024 10:02 AM
            Remote Server returned '550 5.1.1 <Jane.Doe@old.example.com>... User unknown'
"""

EXCHANGE_RUSSIAN_NDR = (
    """From: postmaster@corp.example.ru
To: news@example.org
Subject: =?utf-8?B?0J3QtdC00L7RgdGC0LDQstC70Y/QtdC80L7QtTogTWF5IG5ld3NsZXR0ZXI=?=
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: 8bit

Не удалось выполнить доставку следующим получателям или группам:

sidorov@corp.example.ru
Введенный адрес электронной почты не найден. Проверьте адрес электронной почты получателя и попробуйте отправить сообщение повторно.

Диагностические сведения для администраторов:

Создающий сервер: EX2016.corp.example.ru

sidorov@corp.example.ru
Удаленный сервер возвратил '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'

Исходные заголовки сообщения:

"""
    + our_headers(9, "sidorov@corp.example.ru")
)


def test_exchange_ndr() -> None:
    bounce = parse_bounce(EXCHANGE_NDR.encode())
    assert bounce is not None and bounce.shape == "exchange"
    assert [r.address for r in bounce.recipients] == ["ivan.petrov@corp.example.com", "archive@corp.example.com"]
    unknown, full = bounce.recipients
    assert (unknown.status, unknown.permanent) == ("5.1.1", True)
    assert unknown.diagnostic == "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"
    assert full.status == "5.2.2" and full.permanent is True  # the server said 5.x.x: hard, as given
    assert (bounce.campaign_id, bounce.position) == (CAMPAIGN, 8)

    old = parse_bounce(EXCHANGE_2003_NDR.encode())
    failed = only(old)
    assert old is not None and old.shape == "exchange"
    assert (failed.address, failed.status, failed.permanent) == ("Jane.Doe@old.example.com", "5.1.1", True)
    assert failed.diagnostic == "550 5.1.1 <Jane.Doe@old.example.com>... User unknown"
    assert old.campaign_id is None and old.position is None  # no headers came back

    russian = parse_bounce(EXCHANGE_RUSSIAN_NDR.encode())
    failed = only(russian)
    assert russian is not None and russian.shape == "exchange"
    assert (failed.address, failed.status, failed.permanent) == ("sidorov@corp.example.ru", "5.1.10", True)
    assert (russian.campaign_id, russian.position) == (CAMPAIGN, 9)


POSTFIX_TEXT = (
    """From: MAILER-DAEMON@mx.example.org (Mail Delivery System)
To: news@example.org
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="C0FFEE.1715670131/mx.example.org"

--C0FFEE.1715670131/mx.example.org
Content-Description: Notification
Content-Type: text/plain

This is the mail system at host mx.example.org.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

For further assistance, please send mail to <postmaster>

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

\t\t\tThe mail system

<info@shop.example> (expanded from <sales@shop.example>): host
    mx.shop.example[203.0.113.40] said: 552 5.2.2 <info@shop.example>:
    Mailbox full (in reply to RCPT TO command)

<nobody@shop.example>: unknown user: "nobody"

--C0FFEE.1715670131/mx.example.org
Content-Description: Undelivered Message
Content-Type: message/rfc822

"""
    + our_headers(2, "sales@shop.example", message_id=False)
    + """
Hi!

--C0FFEE.1715670131/mx.example.org--
"""
)


def test_postfix() -> None:
    bounce = parse_bounce(POSTFIX_TEXT.encode())
    assert bounce is not None and bounce.shape == "postfix"
    assert [r.address for r in bounce.recipients] == ["info@shop.example", "nobody@shop.example"]
    full, unknown = bounce.recipients
    assert (full.status, full.permanent) == ("5.2.2", True)
    assert full.diagnostic == "552 5.2.2 <info@shop.example>: Mailbox full"
    assert (unknown.status, unknown.permanent) == ("5.1.1", True)  # from the words "unknown user"
    assert unknown.diagnostic == 'unknown user: "nobody"'
    assert (bounce.campaign_id, bounce.position) == (CAMPAIGN, 2)


EXIM_TEXT = (
    """Return-path: <>
Envelope-to: news@example.org
From: Mail Delivery System <Mailer-Daemon@mail.example.org>
To: news@example.org
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1s6qT1-0004Xy-2b@mail.example.org>
X-Failed-Recipients: nobody@example.com
Auto-Submitted: auto-replied
Content-Type: text/plain; charset=us-ascii

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  nobody@example.com
    host mx.example.com [203.0.113.9]
    SMTP error from remote mail server after RCPT TO:<nobody@example.com>:
    550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in local recipient table
  lost@example.com
    Unrouteable address

------ This is a copy of the message, including all the headers. ------

"""
    + our_headers(23, "nobody@example.com")
    + """
Hello nobody,
info@example.org
"""
)

EXIM_DELAY = """From: Mail Delivery System <Mailer-Daemon@mail.example.org>
To: news@example.org
Subject: Warning: message 1s6qT1-0004Xy-2b delayed 24 hours
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.
A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on mail.example.org.

The message identifier is:     1s6qT1-0004Xy-2b
The subject of the message is: May newsletter
The date of the message is:    Tue, 14 May 2024 07:02:09 +0000

The address to which the message has not yet been delivered is:

  grey@example.com
    host mx.example.com [203.0.113.9]
    Delay reason: SMTP error from remote mail server after RCPT TO:<grey@example.com>:
    451 4.7.1 Greylisted, please try again later

No action is required on your part. Delivery attempts will continue for
some time, and this warning may be repeated at intervals if the message
remains undelivered. Eventually the mail delivery software will give up,
and when that happens, the message will be returned to you.
"""


def test_exim() -> None:
    bounce = parse_bounce(EXIM_TEXT.encode())
    assert bounce is not None and bounce.shape == "exim"
    # info@example.org, alone on a line of the returned copy, is not a recipient.
    assert [r.address for r in bounce.recipients] == ["nobody@example.com", "lost@example.com"]
    unknown, unroutable = bounce.recipients
    assert (unknown.status, unknown.permanent) == ("5.1.1", True)
    assert unknown.diagnostic == (
        "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in local recipient table"
    )
    assert (unroutable.status, unroutable.permanent, unroutable.diagnostic) == (None, True, "Unrouteable address")
    assert (bounce.campaign_id, bounce.position) == (CAMPAIGN, 23)

    delay = parse_bounce(EXIM_DELAY.encode())
    waiting = only(delay)
    assert delay is not None and delay.shape == "exim"
    assert (waiting.address, waiting.status, waiting.permanent, waiting.delayed) == (
        "grey@example.com", "4.7.1", False, True)
    assert waiting.diagnostic == "451 4.7.1 Greylisted, please try again later"


QMAIL_TEXT = (
    """Return-Path: <>
From: MAILER-DAEMON@mail.example.net
To: news@example.org
Subject: failure notice

Hi. This is the qmail-send program at mail.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<nobody@example.net>:
Sorry, no mailbox here by that name. (#5.1.1)

<remote@example.com>:
198.51.100.20 does not like recipient.
Remote host said: 550 5.1.1 <remote@example.com>: Recipient address rejected: User unknown
Giving up on 198.51.100.20.

--- Below this line is a copy of the message.

"""
    + our_headers(4, "nobody@example.net")
    + """
Hello
"""
)


def test_qmail() -> None:
    bounce = parse_bounce(QMAIL_TEXT.encode())
    assert bounce is not None and bounce.shape == "qmail"
    assert [r.address for r in bounce.recipients] == ["nobody@example.net", "remote@example.com"]
    local, remote = bounce.recipients
    assert (local.status, local.permanent) == ("5.1.1", True)
    assert local.diagnostic == "Sorry, no mailbox here by that name. (#5.1.1)"
    assert (remote.status, remote.permanent) == ("5.1.1", True)
    assert remote.diagnostic == "550 5.1.1 <remote@example.com>: Recipient address rejected: User unknown"
    assert (bounce.campaign_id, bounce.position) == (CAMPAIGN, 4)


GMAIL_TEXT = (
    """From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: news.example@gmail.com
Subject: Delivery Status Notification (Failure)
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="000000000000a1b2c3d4e5f60718"

--000000000000a1b2c3d4e5f60718
Content-Type: multipart/alternative; boundary="000000000000a1b2c3d4e5f60719"

--000000000000a1b2c3d4e5f60719
Content-Type: text/plain; charset="UTF-8"

** Address not found **

Your message wasn't delivered to missing.person@example.com because the address couldn't be found, or is unable to receive mail.

Learn more here: https://support.google.com/mail/?p=NoSuchUser

The response from the remote server was:
550 5.1.1 <missing.person@example.com>: Recipient address rejected: User unknown in virtual mailbox table

--000000000000a1b2c3d4e5f60719
Content-Type: text/html; charset="UTF-8"

<html><body><h1>Address not found</h1><p>Your message wasn't delivered to <b>missing.person@example.com</b>.</p></body></html>

--000000000000a1b2c3d4e5f60719--

--000000000000a1b2c3d4e5f60718
Content-Type: message/rfc822

"""
    + our_headers(12, "missing.person@example.com")
    + """
Hi!

--000000000000a1b2c3d4e5f60718--
"""
)

GMAIL_OLD_TEXT = """From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: news.example@gmail.com
Subject: Delivery Status Notification (Failure)
Content-Type: text/plain; charset=ISO-8859-1

Delivery to the following recipient failed permanently:

     gone@example.com

Technical details of permanent failure:
Google tried to deliver your message, but it was rejected by the server for the recipient domain example.com by mx.example.com. [203.0.113.50].

The error that the other server returned was:
550 5.1.1 <gone@example.com>... User unknown

----- Original message -----

X-Sendpy-Recipient: 1b4e28ba-2fa1-11d2-883f-0016d3cca427.13
Subject: May newsletter
"""

GMAIL_DELAY_TEXT = """From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: news.example@gmail.com
Subject: Delivery Status Notification (Delay)
Content-Type: text/plain; charset="UTF-8"

** Delivery incomplete **

There was a temporary problem delivering your message to late@example.com. Gmail will retry for 46 more hours. You'll be notified if the delivery fails permanently.

The response from the remote server was:
421 4.7.0 Try again later, closing connection.
"""


def test_gmail() -> None:
    bounce = parse_bounce(GMAIL_TEXT.encode())
    failed = only(bounce)
    assert bounce is not None and bounce.shape == "gmail"
    assert (failed.address, failed.status, failed.permanent) == ("missing.person@example.com", "5.1.1", True)
    assert failed.diagnostic == (
        "550 5.1.1 <missing.person@example.com>: Recipient address rejected: User unknown in virtual mailbox table"
    )
    assert (bounce.campaign_id, bounce.position) == (CAMPAIGN, 12)

    old = parse_bounce(GMAIL_OLD_TEXT.encode())
    failed = only(old)
    assert old is not None and old.shape == "gmail"
    assert (failed.address, failed.status, failed.permanent) == ("gone@example.com", "5.1.1", True)
    assert failed.diagnostic == "550 5.1.1 <gone@example.com>... User unknown"
    assert (old.campaign_id, old.position) == (CAMPAIGN, 13)  # quoted in the body

    delay = parse_bounce(GMAIL_DELAY_TEXT.encode())
    waiting = only(delay)
    assert delay is not None and delay.shape == "gmail"
    assert (waiting.address, waiting.status, waiting.permanent, waiting.delayed) == (
        "late@example.com", "4.7.0", False, True)


def _b64_lines(data: bytes) -> str:
    encoded = base64.b64encode(data).decode()
    return "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


YANDEX_RU_BODY = """Это письмо отправлено почтовой системой Яндекса автоматически, отвечать на него не нужно.

Сообщение не было доставлено.
Не удалось доставить сообщение по следующим адресам:

<ghost@example.ru>: host mx.example.ru[203.0.113.5] said: 550 5.7.1 No such user!
    (in reply to RCPT TO command)
"""

YANDEX_RUSSIAN = (
    """Return-Path: <>
From: mailer-daemon@yandex.ru
To: news@yandex.ru
Subject: =?utf-8?B?0J3QtdC00L7RgdGC0LDQstC70LXQvdC90L7QtSDRgdC+0L7QsdGJ0LXQvdC40LU=?=
X-Yandex-Uniq: 92309766-f1c8-4bd4-92bc-657c75766587
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="yandex-bounce-1"

--yandex-bounce-1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

"""
    + _b64_lines(YANDEX_RU_BODY.encode())
    + """

--yandex-bounce-1
Content-Type: message/rfc822

"""
    + our_headers(31, "ghost@example.ru", tag=False)
    + """
Привет!

--yandex-bounce-1--
"""
)

YANDEX_ENGLISH = """From: mailer-daemon@yandex.ru
To: news@yandex.ru
Subject: Undelivered mail
Content-Type: text/plain; charset=us-ascii

This is the MAILER-DAEMON, please do not reply to this e-mail.

An error has occurred while attempting to deliver a message for
the following list of recipients:

ghost@example.com: 550 5.1.1 <ghost@example.com>: Recipient address rejected: User unknown
"""


def test_yandex_russian() -> None:
    bounce = parse_bounce(YANDEX_RUSSIAN.encode())
    failed = only(bounce)
    assert bounce is not None and bounce.shape == "yandex"
    assert (failed.address, failed.status, failed.permanent) == ("ghost@example.ru", "5.7.1", True)
    assert failed.diagnostic == "550 5.7.1 No such user!"
    assert (bounce.campaign_id, bounce.position) == (CAMPAIGN, 31)

    # The same report in koi8-r, mislabelled as windows-1251, 8-bit, with a raw 8-bit Subject.
    mislabelled = (
        b"From: mailer-daemon@yandex.ru\nTo: news@yandex.ru\n"
        + "Subject: Недоставленное сообщение\n".encode("koi8-r")
        + b"Content-Type: text/plain; charset=windows-1251\nContent-Transfer-Encoding: 8bit\n\n"
        + YANDEX_RU_BODY.replace(
            "<ghost@example.ru>: host mx.example.ru[203.0.113.5] said: 550 5.7.1 No such user!",
            "<ghost2@example.ru>: нет такого пользователя",
        ).encode("koi8-r")
    )
    failed = only(parse_bounce(mislabelled))
    assert (failed.address, failed.status, failed.permanent) == ("ghost2@example.ru", "5.1.1", True)
    assert failed.diagnostic == "нет такого пользователя"

    english = parse_bounce(YANDEX_ENGLISH.encode())
    failed = only(english)
    assert english is not None and english.shape == "yandex"
    assert (failed.address, failed.status, failed.permanent) == ("ghost@example.com", "5.1.1", True)


MAILRU_RU_BODY = """Это письмо создано автоматически
сервером Mail.Ru, отвечать на него не нужно.

К сожалению, Ваше письмо не может быть доставлено одному или нескольким получателям:

  nosuch@mail.ru
    Message was not accepted -- invalid mailbox.  Local mailbox nosuch@mail.ru is unavailable: user not found

Рекомендуем Вам проверить корректность указания адресов получателей.

------ This is a copy of the message, including all the headers. ------

"""

MAILRU_RUSSIAN = (
    b"From: Mail Delivery System <mailer-daemon@corp.mail.ru>\n"
    b"To: news@mail.ru\n"
    b"Subject: =?koi8-r?B?88/Pwt3FzsnFIM7FIMTP09TB18zFzs8=?=\n"
    b"Auto-Submitted: auto-replied\n"
    b"Content-Type: text/plain; charset=koi8-r\n"
    b"Content-Transfer-Encoding: 8bit\n\n"
    + MAILRU_RU_BODY.encode("koi8-r")
    + our_headers(6, "nosuch@mail.ru").encode()
)

MAILRU_ENGLISH = """From: Mail Delivery System <MAILER-DAEMON@mx.mail.ru>
To: news@mail.ru
Subject: Mail failure.
Content-Type: text/plain; charset=us-ascii

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  someone@mail.ru
    SMTP error from remote mail server after RCPT TO:<someone@mail.ru>:
    host mxs.mail.ru [203.0.113.150]: 550 Message was not accepted -- invalid mailbox.  Local mailbox someone@mail.ru is unavailable: user is terminated
"""


def test_mailru() -> None:
    bounce = parse_bounce(MAILRU_RUSSIAN)
    failed = only(bounce)
    assert bounce is not None and bounce.shape == "mailru"
    assert failed.address == "nosuch@mail.ru"
    assert (failed.status, failed.permanent) == ("5.1.1", True)  # from "invalid mailbox" / "user not found"
    assert failed.diagnostic == (
        "Message was not accepted -- invalid mailbox. Local mailbox nosuch@mail.ru is unavailable: user not found"
    )
    assert (bounce.campaign_id, bounce.position) == (CAMPAIGN, 6)

    english = parse_bounce(MAILRU_ENGLISH.encode())
    failed = only(english)
    assert english is not None and english.shape == "mailru"
    assert (failed.address, failed.status, failed.permanent) == ("someone@mail.ru", "5.1.1", True)  # 550 + words
    assert failed.diagnostic.startswith("550 Message was not accepted -- invalid mailbox.")
    assert english.campaign_id is None


# IMail's SMTP32: a shape none of our own rules know; flufl.bounce's detector does.
SMTP32_TEXT = (
    """From: Postmaster <postmaster@legacy.example.com>
To: news@example.org
Subject: Undeliverable Mail
X-Mailer: <SMTP32 v8.22>
Content-Type: text/plain

Unknown user: ghost@legacy.example.com

Original message follows.

"""
    + our_headers(44, "ghost@legacy.example.com")
)


def test_flufl_fallback() -> None:
    bounce = parse_bounce(SMTP32_TEXT.encode())
    failed = only(bounce)
    assert bounce is not None and bounce.shape == "flufl"
    assert (failed.address, failed.status, failed.permanent) == ("ghost@legacy.example.com", "5.1.1", True)
    assert failed.diagnostic == "Unknown user: ghost@legacy.example.com"
    assert (bounce.campaign_id, bounce.position) == (CAMPAIGN, 44)


# ---------------------------------------------------------------------------------------------
# Not bounces


OUR_REPLY_REFS = f"In-Reply-To: <{CAMPAIGN}.17@example.org>\nReferences: <{CAMPAIGN}.17@example.org>\n"


AUTO_REPLIES: list[bytes] = [
    # Exchange / Outlook, whose words would otherwise look like a failure
    (
        "From: Ivan Petrov <ivan@corp.example.com>\nTo: news@example.org\nSubject: Automatic reply: May newsletter\n"
        + OUR_REPLY_REFS
        + "Auto-Submitted: auto-generated\nX-Auto-Response-Suppress: All\nContent-Type: text/plain\n\n"
        "I am out of the office until May 20 with limited access to e-mail. The message was not delivered to my "
        "colleagues; for urgent matters contact office@corp.example.com.\n"
    ).encode(),
    # Yandex, Russian subject (RFC 2047)
    (
        "From: =?utf-8?B?0JzQsNGA0LjRjw==?= <maria@yandex.ru>\nTo: news@example.org\n"
        "Subject: =?utf-8?B?0JDQstGC0L7QvtGC0LLQtdGCOiBNYXkgbmV3c2xldHRlcg==?=\n"
        + OUR_REPLY_REFS
        + "Auto-Submitted: auto-replied\nContent-Type: text/plain; charset=utf-8\n\nЯ в отпуске до 20 мая.\n"
    ).encode(),
    # Gmail vacation responder: only Auto-Submitted says it, the subject is the user's own
    (
        "From: Bob <bob@gmail.com>\nTo: news@example.org\nSubject: Re: May newsletter\n"
        + OUR_REPLY_REFS
        + "Auto-Submitted: auto-replied\nContent-Type: text/plain\n\nThanks, I'll answer when back.\n"
    ).encode(),
    # X-Autoreply, with failure-like wording in the text
    b"From: sales@shop.example\nTo: news@example.org\nSubject: Re: May newsletter\nX-Autoreply: yes\n"
    b"Content-Type: text/plain\n\nYour message could not be delivered to a person right now; we will reply soon.\n",
    # Precedence: auto_reply
    b"From: help@shop.example\nTo: news@example.org\nSubject: We got your message\nPrecedence: auto_reply\n\n"
    b"Ticket #123 created.\n",
    # Russian "not at my desk": cp1251, with a raw 8-bit subject
    (
        "From: boss@corp.example.ru\nTo: news@example.org\nSubject: Нет на месте\n"
        "Content-Type: text/plain; charset=windows-1251\n\nБуду 20 мая. Письмо не доставлено секретарю.\n"
    ).encode("cp1251"),
    b"From: a@b.example\nTo: news@example.org\nSubject: Out of Office: May newsletter\n\nAway.\n",
]


@pytest.mark.parametrize("raw", AUTO_REPLIES)
def test_out_of_office_is_not_a_bounce(raw: bytes) -> None:
    assert parse_bounce(raw) is None


def test_ordinary_reply_is_not_a_bounce() -> None:
    reply = (
        "From: Old Friend <old.friend@example.com>\nTo: news@example.org\nSubject: Re: May newsletter\n"
        + OUR_REPLY_REFS
        + "Content-Type: text/plain; charset=utf-8\n\n"
        "Hi, please remove my colleague, the address below does not exist anymore (user unknown):\n\n"
        "  colleague@example.com\n\n"
        "On Tue, 14 May 2024 at 10:02, Example News <news@example.org> wrote:\n"
        "> Hello!\n"
    )
    assert parse_bounce(reply.encode()) is None
    # A reply with the bounce phrase of a detector library in it is still a reply.
    assert parse_bounce(reply.replace("(user unknown)", "the following addresses had errors").encode()) is None
    plain = "From: a@example.com\nTo: news@example.org\nSubject: hello\n\nJust saying hi.\n"
    assert parse_bounce(plain.encode()) is None


RELAYED_DSN = """From: postmaster@corp.example.com
To: news@example.org
Subject: Relayed: May newsletter
Content-Type: multipart/report; report-type=delivery-status; boundary="R"

--R
Content-Type: text/plain; charset=us-ascii

Delivery to these recipients or groups is complete, but no delivery notification was sent by the destination server:

ivan@corp.example.com

--R
Content-Type: message/delivery-status

Reporting-MTA: dns;EXCH01.corp.example.com

Final-Recipient: rfc822;ivan@corp.example.com
Action: relayed
Status: 2.0.0
Remote-MTA: dns;mx.corp.example.com

--R--
"""

POSTFIX_SUCCESS_DSN = """From: MAILER-DAEMON@mail.example.org (Mail Delivery System)
Subject: Successful Mail Delivery Report
Content-Type: multipart/report; report-type=delivery-status; boundary="S"

--S
Content-Type: text/plain

This is the mail system at host mail.example.org.

Your message was successfully delivered to the destination(s)
listed below. If the message was delivered to mailbox you will
receive no further notifications. Otherwise you may still receive
notifications of mail delivery errors from other systems.

<happy@example.com>: delivery via mx.example.com[203.0.113.9]:25: 250 2.0.0 Ok: queued as 4VfK

--S
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.org

Final-Recipient: rfc822; happy@example.com
Original-Recipient: rfc822;happy@example.com
Action: delivered
Status: 2.0.0
Diagnostic-Code: smtp; 250 2.0.0 Ok: queued as 4VfK

--S--
"""

TEXT_SUCCESS = """From: MAILER-DAEMON@mail.example.org (Mail Delivery System)
Subject: Delivery Status Notification (Success)

This is the mail system at host mail.example.org.

Your message was successfully delivered to the destination(s)
listed below.

<happy@example.com>: delivery via mx.example.com[203.0.113.9]:25: 250 2.0.0 Ok
"""

READ_RECEIPT = f"""From: Ivan <ivan@corp.example.com>
To: news@example.org
Subject: Read: May newsletter
Content-Type: multipart/report; report-type=disposition-notification; boundary="M"

--M
Content-Type: text/plain

Your message was read on 14 May 2024 10:15.

--M
Content-Type: message/disposition-notification

Reporting-UA: corp.example.com; Microsoft Exchange Server
Final-Recipient: rfc822;ivan@corp.example.com
Original-Message-ID: <{CAMPAIGN}.17@example.org>
Disposition: automatic-action/MDN-sent-automatically; displayed

--M--
"""


def test_success_dsn_is_not_a_bounce() -> None:
    assert parse_bounce(RELAYED_DSN.encode()) is None
    assert parse_bounce(POSTFIX_SUCCESS_DSN.encode()) is None
    assert parse_bounce(TEXT_SUCCESS.encode()) is None


def test_read_receipt_is_not_a_bounce() -> None:
    assert parse_bounce(READ_RECEIPT.encode()) is None


def test_the_keyed_tag_is_read_wherever_our_id_is_found() -> None:
    # Our Message-ID is <campaign.position.tag@domain>; the tag is read (lower-cased) but not
    # checked here: record.py checks it with the key. An id without one gives tag None.
    tag = "abcdefgh234567qr"
    tagged = POSTFIX_DSN_HARD.replace(f"<{CAMPAIGN}.17@example.org>", f"<{CAMPAIGN}.17.{tag.upper()}@example.org>")
    bounce = parse_bounce(tagged.encode())
    assert bounce is not None and (bounce.campaign_id, bounce.position, bounce.tag) == (CAMPAIGN, 17, tag)
    untagged = parse_bounce(POSTFIX_DSN_HARD.encode())
    assert untagged is not None and (untagged.campaign_id, untagged.position, untagged.tag) == (CAMPAIGN, 17, None)
    header = parse_bounce(SENDMAIL_DSN_MULTI.replace(f"X-Sendpy-Recipient: {CAMPAIGN}.41",
                                                     f"X-Sendpy-Recipient: {CAMPAIGN}.41.{tag}").encode())
    assert header is not None and (header.position, header.tag) == (41, tag)
    # Quoted in a plain-text report's text, and only in In-Reply-To.
    typed = (f"From: MAILER-DAEMON@example.com\nSubject: Undelivered Mail Returned to Sender\n\n"
             f"Your message could not be delivered to victim@example.com.\n\n"
             f"> Message-ID: <{CAMPAIGN}.3.{tag}@example.org>\n")
    quoted = parse_bounce(typed.encode())
    assert quoted is not None and (quoted.position, quoted.tag) == (3, tag)
    replied = parse_bounce(typed.replace(f"> Message-ID: <{CAMPAIGN}.3.{tag}@example.org>", "").replace(
        "\n\n", f"\nIn-Reply-To: <{CAMPAIGN}.4.{tag}@example.org>\n\n", 1).encode())
    assert replied is not None and (replied.position, replied.tag) == (4, tag)
    # Something that only looks like a tag (wrong length or alphabet) is not one.
    odd = parse_bounce(POSTFIX_DSN_HARD.replace(f"<{CAMPAIGN}.17@example.org>", f"<{CAMPAIGN}.17.{tag}1@example.org>")
                       .encode())
    assert odd is not None and odd.tag is None


def test_dsn_for_unknown_message_has_no_campaign() -> None:
    foreign = POSTFIX_DSN_HARD.replace(f"<{CAMPAIGN}.17@example.org>", "<CAF=xYz123+ab@mail.gmail.com>")
    bounce = parse_bounce(foreign.encode())
    failed = only(bounce)
    assert bounce is not None and bounce.shape == "rfc3464"
    assert (failed.address, failed.status, failed.permanent) == ("ghost@example.net", "5.1.1", True)
    assert bounce.campaign_id is None and bounce.position is None
    # A look-alike that is not a UUID is not ours either.
    lookalike = POSTFIX_DSN_HARD.replace(str(CAMPAIGN), "1b4e28ba-2fa1-11d2-883f-0016d3cca42Z")
    assert parse_bounce(lookalike.encode()) is not None
    assert parse_bounce(lookalike.encode()).campaign_id is None  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------
# Classification


def _dsn(action: str, status: str | None, diagnostic: str | None) -> bytes:
    fields = "Final-Recipient: rfc822; x@example.com\nAction: " + action + "\n"
    if status:
        fields += f"Status: {status}\n"
    if diagnostic:
        fields += f"Diagnostic-Code: smtp; {diagnostic}\n"
    return (
        "From: MAILER-DAEMON@mail.example.org\nSubject: Undelivered Mail Returned to Sender\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        "--B\nContent-Type: text/plain\n\nfailed\n\n--B\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mail.example.org\n\n" + fields + "\n--B--\n"
    ).encode()


@pytest.mark.parametrize(
    ("action", "status", "diagnostic", "expected_status", "expected_permanent"),
    [
        ("failed", "5.1.1", "550 5.1.1 User unknown", "5.1.1", True),
        ("failed", None, "552 5.2.2 Mailbox full", "5.2.2", True),  # the enhanced code decides
        ("failed", None, "550 User unknown", "5.1.1", True),  # basic 5xx; the words give the code
        ("failed", None, "452 Mailbox full", "4.2.2", False),  # basic 4xx
        ("failed", None, "Mailbox full", "4.2.2", False),  # words only
        ("failed", None, "no such user here", "5.1.1", True),
        ("failed", None, "Адресат: нет такого пользователя", "5.1.1", True),
        ("failed", None, "The email account that you tried to reach does not exist", "5.1.1", True),
        ("failed", None, "something odd happened", None, True),  # Action: failed, nothing else
        ("failed", None, "554 Message rejected as spam by Content Filtering", "5.7.1", True),  # not the address
        ("failed", None, "550 Mailbox is disabled", "5.2.1", True),
        ("failed", None, "451 Temporarily rejected by policy", None, False),  # 4xx: the 5.7.1 guess does not fit
        ("failed", "4.4.7", "Message expired", "4.4.7", False),  # gave up on a temporary error
        ("failed", "5.0.0", "550-5.7.1 Blocked by policy", "5.7.1", True),
        ("delayed", "4.2.2", "452 4.2.2 Over quota", "4.2.2", False),
        ("delayed", None, "Connection timed out", None, False),
        ("delayed", "5.1.1", "550 5.1.1 User unknown", "5.1.1", False),  # still being retried
        ("failed (bad mailbox)", "5.1.1 (bad destination mailbox address)", None, "5.1.1", True),
    ],
)
def test_status_classification(
    action: str, status: str | None, diagnostic: str | None, expected_status: str | None, expected_permanent: bool
) -> None:
    failed = only(parse_bounce(_dsn(action, status, diagnostic)))
    assert (failed.status, failed.permanent) == (expected_status, expected_permanent)
    assert failed.delayed is action.startswith("delayed")


def test_diagnostic_is_trimmed_and_storable() -> None:
    long_words = "550 5.1.1 " + "x" * 2000 + "\x00\x07end"
    failed = only(parse_bounce(_dsn("failed", "5.1.1", long_words)))
    assert len(failed.diagnostic) == 500
    assert "\x00" not in failed.diagnostic and "\x07" not in failed.diagnostic
    raw = POSTFIX_DSN_HARD.encode().replace(b"User unknown in virtual", b"User \xff\xfe\x00unknown in virtual")
    failed = only(parse_bounce(raw))
    failed.diagnostic.encode("utf-8")  # no lone surrogates
    failed.address.encode("utf-8")
    assert "\x00" not in failed.diagnostic


# CommuniGate Pro (common on Russian corporate relays): no rule of ours names it, flufl.bounce
# does not know it; the generic reader does (a bounce subject, failure wording, a named recipient).
COMMUNIGATE_TEXT = (
    """From: MAILER-DAEMON@cgp.corp.example.ru
To: news@example.org
Subject: Undeliverable mail: May newsletter
Content-Type: multipart/mixed; boundary="_===1234567====cgp.corp.example.ru===_"

--_===1234567====cgp.corp.example.ru===_
Content-Type: text/plain; charset="utf-8"

Failed to deliver to '<ghost@example.com>'
SMTP module(domain example.com) reports:
 host mx.example.com says:
 550 5.1.1 <ghost@example.com>: Recipient address rejected: User unknown

--_===1234567====cgp.corp.example.ru===_
Content-Type: message/delivery-status

--_===1234567====cgp.corp.example.ru===_
Content-Type: text/rfc822-headers

"""
    + our_headers(51, "ghost@example.com")
    + """
--_===1234567====cgp.corp.example.ru===_--
"""
)


def test_generic_fallback() -> None:
    bounce = parse_bounce(COMMUNIGATE_TEXT.encode())
    failed = only(bounce)
    assert bounce is not None and bounce.shape == "generic"
    assert (failed.address, failed.status, failed.permanent) == ("ghost@example.com", "5.1.1", True)
    assert failed.diagnostic == "550 5.1.1 <ghost@example.com>: Recipient address rejected: User unknown"
    assert (bounce.campaign_id, bounce.position) == (CAMPAIGN, 51)


def test_known_shape_without_readable_recipient_keeps_campaign() -> None:
    """A qmail report whose recipient lines were mangled: still a bounce of our message 4."""
    mangled = QMAIL_TEXT.replace("<nobody@example.net>:", "nobody at example.net:").replace(
        "<remote@example.com>:", "remote at example.com:"
    )
    bounce = parse_bounce(mangled.encode())
    assert bounce is not None and bounce.shape == "qmail"
    assert bounce.recipients == []
    assert (bounce.campaign_id, bounce.position) == (CAMPAIGN, 4)
    # The same wording in a person's mail is not a bounce.
    quoted = mangled.replace("From: MAILER-DAEMON@mail.example.net", "From: Bob <bob@example.net>").replace(
        "Subject: failure notice", "Subject: Re: May newsletter"
    )
    assert parse_bounce(quoted.encode()) is None


def test_provider_host_names_do_not_decide_the_shape() -> None:
    """A Postfix report about a Yandex or Mail.ru recipient is a Postfix report."""
    to_yandex = POSTFIX_TEXT.replace("mx.shop.example[203.0.113.40]", "mx.yandex.net[203.0.113.40]")
    assert parse_bounce(to_yandex.encode()).shape == "postfix"  # type: ignore[union-attr]
    to_mailru = POSTFIX_TEXT.replace("Mailbox full (in reply", "Mail.Ru mailbox full (in reply").replace(
        "mx.shop.example[203.0.113.40]", "mxs.mail.ru[203.0.113.40]"
    )
    assert parse_bounce(to_mailru.encode()).shape == "postfix"  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------
# Robustness


SAMPLES: list[bytes] = [
    POSTFIX_DSN_HARD.encode(),
    POSTFIX_DSN_DELAYED.encode(),
    SENDMAIL_DSN_MULTI.encode(),
    OFFICE365_DSN.encode(),
    EXCHANGE_NDR.encode(),
    EXCHANGE_2003_NDR.encode(),
    EXCHANGE_RUSSIAN_NDR.encode(),
    POSTFIX_TEXT.encode(),
    EXIM_TEXT.encode(),
    EXIM_DELAY.encode(),
    QMAIL_TEXT.encode(),
    GMAIL_TEXT.encode(),
    GMAIL_OLD_TEXT.encode(),
    GMAIL_DELAY_TEXT.encode(),
    YANDEX_RUSSIAN.encode(),
    YANDEX_ENGLISH.encode(),
    MAILRU_RUSSIAN,
    MAILRU_ENGLISH.encode(),
    SMTP32_TEXT.encode(),
    RELAYED_DSN.encode(),
    COMMUNIGATE_TEXT.encode(),
    READ_RECEIPT.encode(),
]


def _check(result: object) -> None:
    assert result is None or isinstance(result, Bounce)
    if isinstance(result, Bounce):
        for recipient in result.recipients:
            assert isinstance(recipient, BouncedRecipient)
            assert len(recipient.diagnostic) <= 500
            recipient.diagnostic.encode("utf-8")
            recipient.address.encode("utf-8")


def test_malformed_and_garbage_never_raise() -> None:
    rng = random.Random(20240514)
    # Random bytes, of all sizes.
    for size in [0, 1, 2, 10, 100, 1000, 10_000, 100_000]:
        for _ in range(5):
            _check(parse_bounce(bytes(rng.getrandbits(8) for _ in range(size))))
    # Every sample cut short at many points, and with bytes flipped.
    for sample in SAMPLES:
        for cut in sorted({*range(0, len(sample), max(1, len(sample) // 40)), len(sample) - 1}):
            _check(parse_bounce(sample[:cut]))
        for _ in range(20):
            mutated = bytearray(sample)
            for _ in range(rng.randint(1, 30)):
                mutated[rng.randrange(len(mutated))] = rng.getrandbits(8)
            _check(parse_bounce(bytes(mutated)))
    # Hand-made nastiness.
    nasty = [
        b"\x00" * 1000,
        b"\n" * 100_000,
        b"Content-Type: multipart/report; report-type=delivery-status\n\n--\n--\n",  # no boundary
        b"Content-Type: multipart/mixed; boundary=\"x\"\n\n" + b"--x\nContent-Type: multipart/mixed; boundary=\"x\"\n\n" * 5000,
        b"Content-Type: message/rfc822\n\n" * 3000,  # deep nesting
        b"Content-Type: text/plain; charset=\"no-such-charset\"\n\n\xff\xfe\xfd",
        b"Content-Type: text/plain; charset=rot13\n\nabc",
        b"Content-Type: text/plain; charset=base64\nContent-Transfer-Encoding: base64\n\n!!!!not base64====",
        b"Content-Type: text/plain; charset*=utf-8''%ZZ%\n\nx",
        b"Subject: =?utf-8?B?!!!?= =?x-unknown?Q?=FF?=\nFrom: =?utf-8?Q?=E2=80?= <>\n\nbody",
        b"From: \xff\xfe <\xc0@\xc1>\nSubject: \xd0\x9d\xd0\xb5\n\n\xd0",
        b"Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n@@@@",
        b"Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822; \nAction: failed\n",
        b"Content-Type: message/delivery-status\n\nFinal-Recipient:\nAction:\nStatus: 9.9.9\n",
        b"Content-Type: multipart/report; boundary=\"b\"\n\n--b\nContent-Type: message/delivery-status\n\n"
        + b"Final-Recipient: rfc822; a@b.example\nAction: failed\n" * 5000,
        b"Content-Type: text/plain\n\n" + b"<" * 200_000,
        b"Content-Type: text/plain\n\n" + b"a" * 300_000 + b"@" + b"b." * 100_000,
        b"From: mailer-daemon@x.example\nSubject: Undelivered\n\n" + "Не удалось доставить ".encode("cp866") * 1000,
    ]
    for raw in nasty:
        _check(parse_bounce(raw))
    _check(parse_bounce(bytearray(POSTFIX_DSN_HARD.encode())))  # type: ignore[arg-type]
    _check(parse_bounce(POSTFIX_DSN_HARD))  # type: ignore[arg-type]


def test_missing_boundary_dsn_still_read() -> None:
    """A multipart/report whose boundary parameter was lost: the body is one text, still a report."""
    broken = POSTFIX_DSN_HARD.replace('\tboundary="4F1A22C0F3.1715670131/mail.example.org"', "\tcharset=us-ascii")
    bounce = parse_bounce(broken.encode())
    failed = only(bounce)
    assert (failed.address, failed.status, failed.permanent) == ("ghost@example.net", "5.1.1", True)
    assert (bounce.campaign_id, bounce.position) == (CAMPAIGN, 17)  # type: ignore[union-attr]


def test_huge_message() -> None:
    # A 50 MB bounce: the report first, then the returned original with a huge attachment.
    attachment = _b64_lines(random.Random(1).randbytes(512 * 1024)) + "\n"
    head, _ = POSTFIX_DSN_HARD.rsplit("--4F1A22C0F3.1715670131/mail.example.org--", 1)
    chunk = attachment.encode()
    body = head.encode() + (
        b"--4F1A22C0F3.1715670131/mail.example.org\nContent-Type: application/octet-stream\n"
        b"Content-Transfer-Encoding: base64\n\n"
    )
    huge = body + chunk * (50 * 1024 * 1024 // len(chunk) + 1)
    assert len(huge) > 50 * 1024 * 1024
    started = time.monotonic()
    failed = only(parse_bounce(huge))
    assert failed.address == "ghost@example.net" and failed.status == "5.1.1"
    assert time.monotonic() - started < 10
    # What the caller passes: the first ~2 MB, cut mid-line.
    started = time.monotonic()
    failed = only(parse_bounce(huge[: 2 * 1024 * 1024 - 7]))
    assert failed.address == "ghost@example.net"
    assert time.monotonic() - started < 10

    # Text reports that are huge or built to make patterns backtrack.
    exim_head = EXIM_TEXT.split("------ This is a copy")[0].encode()
    worst = [
        exim_head + b"  " + b"a" * (MAX_INPUT_BYTES // 2) + b"\n",  # one endless line
        exim_head + (b"  x" * 40 + b"@" + b"y." * 40 + b"\n") * 20_000,  # address-like lines
        exim_head + (b"  " + b"w" * 100 + b" " + b"(" * 50 + b"\n") * 20_000,
        exim_head + (b"said: " + b"5.1.1 " * 300 + b"\n") * 1000,
        exim_head + b"  x@y.example\n" + b"    " + b"#550 5.1.1 " * 100_000,
        b"Content-Type: text/html\nFrom: mailer-daemon@x.example\n\n" + b"<style" * 300_000,
    ]
    for raw in worst:
        started = time.monotonic()
        _check(parse_bounce(raw))
        assert time.monotonic() - started < 10, raw[:200]



_REPLIED = f"<{CAMPAIGN}.5.abcdefgh234567qr@example.org>"


def _reply(sender: str, subject: str, body: str, *headers: str) -> bytes:
    lines = [f"From: {sender}", "To: shop@example.org", f"Subject: {subject}", f"In-Reply-To: {_REPLIED}",
             f"References: {_REPLIED}", *headers, "Content-Type: text/plain; charset=utf-8", "", body]
    return "\n".join(lines).encode()


_QUOTE = ("\n\nOn Mon, shop@example.org wrote:\n> Ваш заказ не доставлен на адрес anna@example.com\n"
          "> Delivery failed: we could not deliver your order to anna@example.com\n")


@pytest.mark.parametrize("raw", [
    # A Gmail vacation reply to «Ваш заказ не доставлен? Выберите новое время».
    _reply("Anna <anna@example.com>", "Re: Ваш заказ не доставлен? Выберите новое время",
           "Я в отпуске до понедельника." + _QUOTE, "Auto-Submitted: auto-replied", "Precedence: bulk"),
    # A person's reply, quoting the subject and the text.
    _reply("Anna <anna@example.com>", "Re: Ваш заказ не доставлен? Выберите новое время",
           "Спасибо, всё получил!" + _QUOTE),
    _reply("anna@example.com", "Re: Delivery failed: please update your address", "Thanks, done." + _QUOTE),
    _reply("anna@example.com", "Автоответ: Ваш заказ не доставлен? Выберите новое время", "Я в отпуске." + _QUOTE),
    _reply("anna@example.com", "Automatic reply: Delivery failed: please update your address",
           "I am out of the office." + _QUOTE),
    _reply("anna@example.com", "Delivery failed: please update your address", "Away." + _QUOTE, "X-Autoreply: yes"),
    _reply("anna@example.com", "Undelivered: your order", "Away." + _QUOTE, "X-Autorespond: yes"),
    _reply("anna@example.com", "Undelivered: your order", "Away." + _QUOTE, "Precedence: auto_reply"),
    _reply("anna@example.com", "Undelivered: your order", "Away." + _QUOTE, "Auto-Submitted: auto-generated"),
], ids=["vacation", "thanks-ru", "thanks-en", "avtootvet", "automatic-reply", "x-autoreply", "x-autorespond",
        "precedence", "auto-generated"])
def test_replies_and_auto_replies_to_a_subject_with_bounce_words_are_no_bounces(raw: bytes) -> None:
    # Each marked the recipient bounced 5.0.0 and suppressed them (issue 11).
    assert parse_bounce(raw) is None


def test_the_same_words_from_a_mailer_daemon_are_still_a_bounce() -> None:
    body = "Delivery failed: the mail could not be delivered to anna@example.com.\nuser unknown" + _QUOTE
    for sender, extra in (("MAILER-DAEMON@mx.example.com", ()), ("postmaster@mx.example.com", ()),
                          ("", ("Return-Path: <>",)),
                          ("Mail Delivery System <mailer-daemon@mx.example.com>", ("Auto-Submitted: auto-replied",))):
        raw = _reply(sender, "Delivery failed: please update your address", body, *extra)
        bounce = parse_bounce(raw)
        assert bounce is not None and bounce.position == 5, sender
        assert [r.address for r in bounce.recipients] == ["anna@example.com"], sender

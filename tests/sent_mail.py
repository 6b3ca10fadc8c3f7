"""Which message in the SMTP sink a test's own campaign sent.

Not "the last one": a campaign another test started and never waited for (test_a11y starts one at
its end) is sent only once a later test starts the session's workers, and may reach the sink a
millisecond after this test's own — a report about that message instead read "gone@example.com
not recorded within 90 s" (issue 11, the flaky backlog test in CI).
"""

from __future__ import annotations

from sendpy.devstack.smtp_sink import SmtpSink


def message_id_to(sink: SmtpSink, recipient: str, from_email: str) -> str:
    """The Message-ID of the one message `from_email` sent to `recipient`."""
    found = [m.parsed()["Message-ID"] for m in sink.messages
             if recipient in m.rcpt_tos and from_email in str(m.parsed()["From"])]
    assert len(found) == 1, (recipient, from_email, [(m.rcpt_tos, m.parsed()["From"]) for m in sink.messages])
    return str(found[0])

"""What the scheduler decides about a recipient or a batch: retry when, fail after how many tries,
and why the rest of a batch stops."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from shared.mail.messenger import ConnectError, Reply, ReplyKind
from shared.recipients import Claimed, RecipientResult
from shared.smtp_accounts import Sender, VerifyProblem, explain


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 30.0
    max_attempts: int = 10
    sender_pause_seconds: float = 3600.0
    max_delay_seconds: float = 3600.0
    # An account whose server is too slow waits this long, twice as long after each slow batch in
    # a row, at most `sender_pause_seconds` (see slowness.py).
    slow_backoff_seconds: float = 60.0

    def delay(self, attempts: int) -> float:
        """Exponential (×4) with jitter, capped (an hour by default): ten attempts span about six hours."""
        ceiling = min(self.base_seconds * 4.0 ** max(attempts - 1, 0), self.max_delay_seconds)
        return ceiling * (0.5 + random.random() / 2)

    def outcome(self, item: Claimed, reply: Reply) -> RecipientResult:
        """A passing failure: try again later, or give up with the reply after the last attempt.
        How many attempts were made is the recipient's `attempts` (counted as it is claimed): data
        the page and the export say in their reader's language, not prose in the reply."""
        if item.attempts >= self.max_attempts:
            return RecipientResult(item.position, "failed", reply.describe())
        return RecipientResult(item.position, "retry", reply.describe(), time.time() + self.delay(item.attempts))


@dataclass
class Stop:
    """Why the rest of a batch must not be sent now, and what its server did meanwhile."""

    outcome: ReplyKind | None = None
    reason: str = ""
    not_before: float = 0.0  # epoch seconds, for deferrals
    slow: float = 0.0  # the longest wait for one reply when the server overran a deadline; 0 when it did not
    in_time: bool = False  # the server answered a whole transaction within its deadline


def settings_problem(sender: Sender, exc: ConnectError) -> str:
    """Why the campaign paused, in both languages (a worker does not know its reader's)."""
    return _in_both_languages(sender, VerifyProblem(exc.kind, f"{exc.code} {exc}" if exc.code else str(exc), exc.code))


def refusal_problem(sender: Sender, reply: Reply) -> str:
    """Why the campaign paused on a reply while sending (classify's PAUSE_CAMPAIGN: the log-in or
    the sender address refused), in both languages; the server's own words as the detail."""
    code = reply.code or 0
    kind = "auth" if code in (530, 534, 535) else "protocol" if 500 <= code <= 504 else "sender_refused"
    return _in_both_languages(sender, VerifyProblem(kind, reply.describe(), reply.code))


def _in_both_languages(sender: Sender, problem: VerifyProblem) -> str:
    return " / ".join(str(explain(problem, sender.from_email, sender.host, sender.port, sender.preset, lang)["message"])
                      for lang in ("ru", "en"))

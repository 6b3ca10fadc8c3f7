"""Slow SMTP servers: how long one message may take before DATA, how long a slow account waits,
and what its campaigns say meanwhile.

A server that answers every command just inside the SMTP timeout would hold its batch — and
everyone queued behind it on the partition — for minutes per message. So what comes before DATA
has deadlines tied to the batch's budget: half of it to connect and log in, half of it for MAIL,
RCPT and DATA up to the server's "354". Cutting the connection there neither loses nor duplicates
anything (the message was not handed over); from "354" on only the SMTP timeout applies.

When a server overruns, that recipient's attempt counts (the retry policy ends it as failed with
the reason if the server never speeds up), the rest of the batch is deferred, and the account is
paused for a back-off that doubles with each slow batch in a row, so a slow server cannot take
the partition again and again in turns; once the back-off is over, the account gets one batch at
a time until a message goes through in time. A final reply to DATA slower than a phase counts
the same way, though nothing may be cut there. Its campaigns show why, in both languages, until
a message goes through in time again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from shared.commands import DeliveryBatch
from shared.delivery.connections import SenderState
from shared.delivery.outcomes import RetryPolicy, Stop
from shared.delivery.store import DeliveryStore
from shared.errors import translate
from shared.mail.messenger import Reply, ReplyKind
from shared.recipients import Claimed, RecipientResult

log = logging.getLogger("sendpy.delivery")

# The share of the batch budget each phase before DATA may take: connecting and logging in,
# then MAIL..DATA: a message begun at the end of the budget reaches DATA within twice the budget.
PHASE_SHARE = 0.5
# Found in every campaign reason `reason` writes: how a worker recognises its own reason to take
# it away once the server is fast again (and never someone else's).
MARK = "answers very slowly"


def phase_seconds(batch_budget: float) -> float:
    return batch_budget * PHASE_SHARE


@dataclass
class SlowStreak:
    """One account's slow batches in a row, as this worker saw them."""

    strikes: int = 0
    waited: float = 0.0  # the longest wait for one reply in the streak, seconds (at least what the server takes)
    reason: str = ""  # what its campaigns show while the streak lasts
    running: int = 0  # batches of the account this worker is working on now

    def backoff(self, base: float, cap: float) -> float:
        """How long the account waits after its latest slow batch: base, ×2 each time, capped."""
        return min(base * 2.0 ** max(self.strikes - 1, 0), max(cap, base))


def _seconds(waited: float) -> str:
    return str(max(1, round(waited)))  # a lower bound: the reply given up on would have taken longer


def reason(host: str, waited: float) -> str:
    """The campaign's reason, in both languages (a worker does not know its reader's)."""
    text = {lang: translate("slow_server", lang, host=host, seconds=_seconds(waited)) for lang in ("ru", "en")}
    return f"{text['ru']} / {text['en']}"


def attempt_reply(waited: float) -> str:
    """The recipient's reply for an attempt cut off before DATA, in both languages."""
    text = {lang: translate("slow_server_attempt", lang, seconds=_seconds(waited)) for lang in ("ru", "en")}
    return f"{text['ru']} / {text['en']}"


class SlowServers:
    """The slow streaks of the accounts one sender worker sends for, and what follows from them."""

    def __init__(self, retry: RetryPolicy, store: DeliveryStore) -> None:
        self._retry = retry
        self._store = store
        self._streaks: dict[int, SlowStreak] = {}

    def streak(self, sender_id: int) -> SlowStreak:
        return self._streaks.setdefault(sender_id, SlowStreak())

    def forget_all_but(self, sender_ids: set[int]) -> None:
        """Drop the quiet accounts' entries; a streak under way is kept for its back-off."""
        for sender_id in [sid for sid, streak in self._streaks.items()
                          if sid not in sender_ids and not streak.running and not streak.strikes]:
            del self._streaks[sender_id]

    def too_slow(self, state: SenderState, item: Claimed, stop: Stop, waited: float) -> RecipientResult:
        """A message cut off before DATA: its attempt counts (the retry policy gives up on it in
        the end), and the account backs off."""
        self.strike(state, stop, waited)
        return self._retry.outcome(item, Reply(ReplyKind.RETRY, None, attempt_reply(waited)))

    def strike(self, state: SenderState, stop: Stop, waited: float) -> None:
        """The server overran: the rest of the batch is deferred, and the account backs off at once
        for all its batches in this worker — one strike per batch, however many of its
        connections the server held up."""
        streak = self.streak(state.sender.id)
        if not stop.slow:
            streak.strikes += 1
            until = time.time() + streak.backoff(self._retry.slow_backoff_seconds, self._retry.sender_pause_seconds)
            state.paused_until = max(state.paused_until, until)
            if stop.outcome is None:
                stop.outcome, stop.reason = ReplyKind.RETRY, "slow server"
            stop.not_before = max(stop.not_before, until)
        stop.slow = max(stop.slow, waited)
        streak.waited = max(streak.waited, waited)
        streak.reason = reason(state.sender.host, streak.waited)

    async def after(self, batch: DeliveryBatch, stop: Stop) -> None:
        """After a batch: a server that overran has its account's back-off stored (other workers
        and a restart honour it) and the campaign says why; one that answered in time ends the
        streak and takes the reason away."""
        streak = self.streak(batch.sender_id)
        if stop.slow:
            await self._store.pause_sender(batch.sender_id, stop.not_before, streak.reason)
            await self._store.note_slow_server(batch.campaign_id, streak.reason)
            log.warning("server too slow", extra={"sender": batch.sender_id, "waited": round(stop.slow, 1),
                                                  "strikes": streak.strikes, "until": stop.not_before})
        elif stop.in_time:
            streak.strikes, streak.waited, streak.reason = 0, 0.0, ""
            await self._store.note_slow_server(batch.campaign_id, None)

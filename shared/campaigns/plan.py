"""How long a campaign takes through an account with limits: days, emails a day, the last email.

The sender workers keep two rolling windows per account (shared/limits.py): at most `per_minute`
in any 60 seconds and at most `per_day` in any 24 hours, counting what the account already sent
in the last 24 hours. Under those rules the account's sends repeat with a period of one day: the
k-th send after the first `per_day` can go out no earlier than 24 hours after the send `per_day`
places before it. So the first day's schedule (what was already sent, then ours paced by the
per-minute limit) fixes every later one, and the time of any send is one lookup, however many
recipients there are.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY = 86400.0


@dataclass(frozen=True)
class Plan:
    count: int
    per_day: int | None  # emails a day this campaign can get (None: no daily limit)
    days: int  # on which day (counting from 1) the last email goes out
    first_at: float  # epoch seconds of the first email
    last_at: float  # epoch seconds of the last email

    def to_json(self) -> dict[str, object]:
        return {"count": self.count, "per_day": self.per_day, "days": self.days,
                "first_at": round(self.first_at), "last_at": round(self.last_at)}


def plan(count: int, per_minute: int | None, per_day: int | None, sent_at: list[float], now: float,
         rate_per_minute: float | None = None) -> Plan | None:
    """The schedule of `count` emails from `now`; None when nothing limits the pace and no rate is known.

    `sent_at` is when the account's mail of the last 24 hours went out; `rate_per_minute` is the
    pace observed so far, used when the account has no limits (a corporate relay).
    """
    if count <= 0:
        return Plan(0, per_day, 0, now, now)
    pace = per_minute or rate_per_minute
    gap = 60.0 / pace if pace else 0.0
    if not per_day or gap * per_day >= DAY:  # no daily limit, or the per-minute one keeps below it
        if not gap:
            return None
        last = now + (count - 1) * gap
        return Plan(count, min(per_day, count) if per_day else None, _day_of(last, now), now, last)
    recent = sorted(t for t in sent_at if now - DAY < t <= now)[-per_day:]
    held = len(recent)

    def send_time(j: int) -> float:
        """When our j-th email (from 0) goes out: its place in the account's day-periodic schedule."""
        place = held + j
        days, slot = divmod(place, per_day)
        base = recent[slot] if slot < held else now + (slot - held) * gap
        return base + days * DAY

    first, last = send_time(0), send_time(count - 1)
    return Plan(count, min(per_day, count), _day_of(last, now), first, last)


def _day_of(moment: float, now: float) -> int:
    return int((moment - now) // DAY) + 1

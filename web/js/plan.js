// The API's sending plan (GET /v1/campaigns/{id} → plan) in words: "about 6 days, 500 a day;
// the last email around 14:05, 5 Dec". Units and plurals come from the language's own rules.

import { currentLanguage, number, t } from "./i18n.js";

const DAY = 86400;

// "3 попытки", "5 дней": the unit in the plural form the number takes in the reader's language.
export function count(n, unit) {
  const form = new Intl.PluralRules(currentLanguage()).select(n);
  return t(`unit.${unit}.${form}`, { n: number(n) });
}

export function span(seconds) {
  if (seconds < 60) return t("plan.underminute");
  const minutes = Math.ceil(seconds / 60);
  if (minutes < 120) return count(minutes, "minute");
  const hours = Math.round(minutes / 60);
  if (hours < 48) return count(hours, "hour");
  return count(Math.ceil(hours / 24), "day");
}

// «примерно 5 минут», but «меньше минуты» alone: «примерно меньше минуты» is not Russian.
function about(seconds) {
  return seconds < 60 ? t("plan.underminute") : t("plan.about", { t: span(seconds) });
}

export function moment(epochSeconds) {
  const at = new Date(epochSeconds * 1000);
  const lang = currentLanguage();
  const time = at.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
  const sameDay = at.toDateString() === new Date().toDateString();
  return sameDay ? time : `${time}, ${at.toLocaleDateString(lang, { day: "numeric", month: "short" })}`;
}

// `behind`: the campaign of the same account this one waits for (the API's waiting_for), named in
// the plan; `startsAt`: a scheduled campaign's time, from which its plan counts; `resumed`: some of
// its mail went already (its *next* emails, not its first).
export function planText(plan, { behind = null, startsAt = null, resumed = false } = {}) {
  if (!plan) return t("review.nolimit");
  if (!plan.count) return "—";
  const now = Math.max(Date.now() / 1000, startsAt ? new Date(startsAt).getTime() / 1000 : 0);
  // Its own emails are said apart from a wait before them (another campaign of the account first,
  // or the account's day used up): 3 emails behind a 6-day campaign take under a minute, not 6 days.
  const waits = plan.first_at > now + 60;
  const from = waits ? plan.first_at : now;
  const days = waits ? Math.floor((plan.last_at - plan.first_at) / DAY) + 1 : plan.days;
  const own = days > 1 && plan.per_day ? t("plan.days", { days: count(days, "day"), perday: number(plan.per_day) })
    : about(Math.max(plan.last_at - from, 0));
  const parts = [];
  if (waits && behind) {
    const name = behind.name || behind.subject || t("campaign.unnamed");
    parts.push(t("plan.behind", { name, own, at: moment(plan.first_at) }));
  } else {
    parts.push(own);
    if (waits) parts.push(t(resumed ? "plan.next" : "plan.first", { at: moment(plan.first_at) }));
  }
  if (!waits || moment(plan.last_at) !== moment(plan.first_at)) parts.push(t("plan.last", { at: moment(plan.last_at) }));
  return parts.join("; ");
}

// The API's sending plan (GET /v1/campaigns/{id} → plan) in words: "about 6 days, 500 a day;
// the last email around 14:05, 5 Dec". Units and plurals come from the language's own rules.

import { currentLanguage, t } from "./i18n.js";

// "3 попытки", "5 дней": the unit in the plural form the number takes in the reader's language.
export function count(n, unit) {
  const lang = currentLanguage();
  const form = new Intl.PluralRules(lang).select(n);
  return t(`unit.${unit}.${form}`, { n: n.toLocaleString(lang) });
}

export function span(seconds) {
  if (seconds < 60) return t("plan.underminute");
  const minutes = Math.ceil(seconds / 60);
  if (minutes < 120) return count(minutes, "minute");
  const hours = Math.round(minutes / 60);
  if (hours < 48) return count(hours, "hour");
  return count(Math.ceil(hours / 24), "day");
}

export function moment(epochSeconds) {
  const at = new Date(epochSeconds * 1000);
  const lang = currentLanguage();
  const time = at.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
  const sameDay = at.toDateString() === new Date().toDateString();
  return sameDay ? time : `${time}, ${at.toLocaleDateString(lang, { day: "numeric", month: "short" })}`;
}

export function planText(plan) {
  if (!plan) return t("review.nolimit");
  if (!plan.count) return "—";
  const now = Date.now() / 1000;
  const parts = [];
  if (plan.days > 1) parts.push(t("plan.days", { days: count(plan.days, "day"), perday: plan.per_day.toLocaleString(currentLanguage()) }));
  else parts.push(t("plan.about", { t: span(Math.max(plan.last_at - now, 0)) }));
  if (plan.first_at > now + 60) parts.push(t("plan.next", { at: moment(plan.first_at) }));
  parts.push(t("plan.last", { at: moment(plan.last_at) }));
  return parts.join("; ");
}

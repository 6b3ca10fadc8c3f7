// Moments as the reader's language writes them, in the reader's own time zone: «30 ноября 2026, 14:05»,
// "November 30, 2026, 2:05 PM"; and the zone itself in people's words.

import { currentLanguage } from "./i18n.js";

// The date as the language writes it, without what follows the year (Russian adds «г.»).
function dateOnly(at, lang) {
  const parts = new Intl.DateTimeFormat(lang, { day: "numeric", month: "long", year: "numeric" }).formatToParts(at);
  let end = parts.length;
  while (end > 0 && parts[end - 1].type === "literal") end -= 1;
  return parts.slice(0, end).map((p) => p.value).join("");
}

export function dateTime(value) {
  const at = new Date(value);
  const lang = currentLanguage();
  const time = at.toLocaleTimeString(lang, { timeStyle: "short" }); // 09:30; 9:30 AM
  return `${dateOnly(at, lang)}, ${time}`;
}

// The person's time zone as people say it: «Москва, стандартное время (UTC+3)», not Europe/Moscow.
export function zoneName() {
  const part = (style) => new Intl.DateTimeFormat(currentLanguage(), { timeZoneName: style }).formatToParts(new Date())
    .find((p) => p.type === "timeZoneName")?.value;
  const name = part("long") || timeZoneId();
  const offset = part("shortOffset")?.replace(/^GMT/, "UTC") || "UTC";
  return name.includes(offset) ? name : `${name} (${offset})`;
}

// The zone's name for the server (an export's times): Europe/Moscow.
export function timeZoneId() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

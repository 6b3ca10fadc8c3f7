// What the sender forms (the wizard's step 2 and the senders page's «Изменить») say about what they
// send, in the page's words before the server is asked: the password rule of a saved sender, each
// field's problem, and limits above the provider's own.

import { clearFieldProblem } from "./dom.js";
import { number, t } from "./i18n.js";

const MAX_LIMIT = 10_000_000; // as shared/smtp_accounts.py allows
const MAX_PASSWORD = 1024;

// A server name as the API stores it: lower case, no final dot, an IDN in its ASCII form.
export function hostName(value) {
  const typed = String(value || "").trim().toLowerCase().replace(/\.$/, "");
  if (!typed) return "";
  try {
    return new URL(`http://${typed}`).hostname.replace(/\.$/, "");
  } catch {
    return typed; // an IPv6 address, or something the server will refuse in its own words
  }
}

// The password of a saved sender, as shared/smtp_accounts.py update() treats it: left empty it
// keeps the saved one — for the same server and port only; a saved password is never sent to
// another server unasked. The placeholder, the hint under the field and the check before saving
// say that, and follow the server and port fields as they are typed (a preset fills them too).
// An empty server or port field keeps the saved value, as the API does with a field not sent.
// `problemId`: the password's problem line, cleared once the server is back to the saved one.
export function passwordRule(form, hint, problemId) {
  let stored = null;
  const movedTo = () => {
    if (!stored) return null;
    const host = hostName(form.host.value) || stored.host.toLowerCase();
    const port = form.port.value === "" ? stored.port : Number(form.port.value);
    return host !== stored.host.toLowerCase() || port !== stored.port ? `${host}:${port}` : null;
  };
  const update = () => {
    const moved = movedTo();
    form.password.required = !stored || Boolean(moved);
    form.password.placeholder = stored && !moved ? t("sender.keeppassword") : "";
    hint.textContent = !stored ? "" : t(moved ? "sender.passwordagain" : "sender.passwordkeep", { server: moved });
    if (!form.password.required && !form.password.value) clearFieldProblem(form.password, problemId);
  };
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  update();
  return {
    // The sender the form corrects now (null: a new one).
    edit(sender) {
      stored = sender;
      update();
    },
    problem() {
      const typed = form.password.value;
      if (typed) return typed.length > MAX_PASSWORD ? t("sender.longpassword", { n: MAX_PASSWORD }) : "";
      if (!stored) return t("sender.needpassword");
      const moved = movedTo();
      return moved ? t("sender.passwordfor", { server: moved }) : "";
    },
  };
}

const emailProblem = (value) => (!value.trim() ? t("auth.noemail") : /^[^\s@]+@[^\s@]+$/.test(value.trim()) ? "" : t("auth.bademail"));
const portProblem = (value, required) => {
  if (value === "") return required ? t("sender.badport") : "";
  const port = Number(value);
  return Number.isInteger(port) && port >= 1 && port <= 65535 ? "" : t("sender.badport");
};
const limitProblem = (value) => {
  const limit = Number(value);
  return value === "" || (Number.isInteger(limit) && limit >= 1 && limit <= MAX_LIMIT) ? "" : t("sender.badlimit");
};

// [input, problem element id, message] for each field of the form (see dom.js showFieldProblems);
// the problem elements are `${prefix}${field name}`. `full`: the senders page's form, where the
// server and port are the sender's own and must be there; the wizard derives them from a preset.
// A number field holding text reads as "" with validity.badInput: that is a wrong number, not none.
export function senderChecks(form, rule, prefix, full = false) {
  const typed = (input) => (input.validity.badInput ? "x" : input.value);
  const checks = [
    [form.from_email, `${prefix}from_email`, emailProblem(form.from_email.value)],
    [form.host, `${prefix}host`, full && !form.host.value.trim() ? t("sender.needhost") : ""],
    [form.port, `${prefix}port`, portProblem(typed(form.port), full)],
  ];
  for (const name of ["per_minute", "per_day"]) if (form[name]) checks.push([form[name], `${prefix}${name}`, limitProblem(typed(form[name]))]);
  checks.push([form.password, `${prefix}password`, rule.problem()]);
  return checks.filter(([, id]) => document.getElementById(id));
}

// The provider's own ceilings (shared/smtp_presets.py, served by /v1/presets) against the limits
// typed: above them — or none at all — the provider blocks sending from the mailbox, so that is
// said under the fields as they are typed. It is a warning, not a refusal: a paid plan allows
// more, and what is typed is saved as it is. `presetOf()` is the provider the form sends through.
export function limitWarning(form, where, presetOf) {
  const update = () => {
    const preset = presetOf();
    const over = (input, ceiling) => ceiling && (input.value === "" || Number(input.value) > ceiling);
    const above = preset && (over(form.per_day, preset.per_day) || over(form.per_minute, preset.per_minute));
    where.textContent = above ? t("sender.overlimit", { title: providerTitle(preset),
      perday: number(preset.per_day), perminute: number(preset.per_minute) }) : "";
  };
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  return update;
}

// A provider as the reader knows it («Яндекс Почта»); the API's title otherwise.
export function providerTitle(preset) {
  const key = `preset.${preset.key}`;
  const text = t(key);
  return text === key ? preset.title : text;
}

// A sender not verified says why: its last check failed («проверка не прошла»), or none was made.
export const checkState = (sender) => (sender.last_error ? "sender.checkfailed" : "sender.notverified");

// The edit form's title: a sender that works is changed («Изменить …»), one that failed is corrected.
export const editTitle = (sender) => t(sender.verified ? "sender.change" : "sender.editing", { email: sender.from_email });

// The account page: the signed-in address and the password change form.

import { api } from "../api.js";
import { html, main, render, showError, showFieldProblems } from "../dom.js";
import { t } from "../i18n.js";

const MIN_PASSWORD = 8; // as shared/accounts.py checks
const MAX_PASSWORD = 1024;

export function settingsPage(me) {
  render(main(), html`<h1>${t("nav.settings")}</h1><p>${me.email}</p>
    <form id="password" class="card" novalidate><h2>${t("settings.password")}</h2>
      <label>${t("settings.current")}<input name="current" type="password" autocomplete="current-password" required></label>
      <span class="error field-error" id="current-problem"></span>
      <label>${t("settings.new")}<input name="new" type="password" autocomplete="new-password" required minlength="8"></label>
      <span class="error field-error" id="new-problem"></span>
      <button type="submit">${t("common.save")}</button><div id="result" aria-live="polite"></div></form>`);
  // An answer about what was typed before goes once the person types again («wrong password» stayed
  // on screen while the corrected one was being entered).
  document.getElementById("password").addEventListener("input", () => document.getElementById("result").replaceChildren());
  document.getElementById("password").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const fresh = form.new.value;
    // The page's own words next to each field, not the browser's English bubbles.
    const fine = showFieldProblems([
      [form.current, "current-problem", form.current.value ? "" : t("settings.nocurrent")],
      [form.new, "new-problem", !fresh ? t("settings.nonew") : fresh.length < MIN_PASSWORD ? t("auth.shortpassword")
        : fresh.length > MAX_PASSWORD ? t("settings.longpassword") : ""],
    ]);
    if (!fine) return;
    const result = document.getElementById("result");
    try {
      await api("POST", "/v1/auth/password", { current_password: form.current.value, new_password: fresh });
      form.reset();
      render(result, html`<p class="notice">${t("settings.changed")}</p>`);
    } catch (error) {
      // A field's problem («Текущий пароль указан неверно.») is said at that field, not under «Сохранить».
      const at = { current_password: [form.current, "current-problem"], new_password: [form.new, "new-problem"] }[error.field];
      if (at) showFieldProblems([[...at, error.message]]);
      else showError(result, error);
    }
  });
}

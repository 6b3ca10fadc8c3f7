// The account page: the signed-in address and the password change form.

import { api } from "../api.js";
import { html, main, render, showError } from "../dom.js";
import { t } from "../i18n.js";

export function settingsPage(me) {
  render(main(), html`<h1>${t("nav.settings")}</h1><p>${me.email}</p>
    <form id="password" class="card"><h2>${t("settings.password")}</h2>
      <label>${t("settings.current")}<input name="current" type="password" autocomplete="current-password" required></label>
      <label>${t("settings.new")}<input name="new" type="password" autocomplete="new-password" required minlength="8"></label>
      <button type="submit">${t("common.save")}</button><div id="result" aria-live="polite"></div></form>`);
  // An answer about what was typed before goes once the person types again («wrong password» stayed
  // on screen while the corrected one was being entered).
  document.getElementById("password").addEventListener("input", () => document.getElementById("result").replaceChildren());
  document.getElementById("password").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = document.getElementById("result");
    try {
      await api("POST", "/v1/auth/password", { current_password: event.target.current.value, new_password: event.target.new.value });
      render(result, html`<p class="notice">${t("settings.changed")}</p>`);
    } catch (error) {
      showError(result, error);
      if (error.field === "current_password") event.target.current.focus();
    }
  });
}

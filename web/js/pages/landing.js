// The front page for visitors: what Sendpy does, and the sign-up / log-in form.

import { api } from "../api.js";
import { html, main, render, showError } from "../dom.js";
import { t } from "../i18n.js";

export function landingPage() {
  render(main(), html`<div class="landing">
    <h1 class="landing-title">${t("landing.title")}</h1><p class="lead">${t("landing.lead")}</p>
    <section class="landing-how"><h2>${t("landing.how")}</h2>
      <ol class="steps">${[1, 2, 3, 4].map((n) => html`<li>${t(`landing.step${n}`)}</li>`)}</ol>
      <h2>${t("landing.guarantees")}</h2>
      <ul class="checks">${[1, 2, 3, 4].map((n) => html`<li>${t(`landing.g${n}`)}</li>`)}</ul>
    </section>
    <section class="card landing-auth" aria-labelledby="auth-title">
      <h2 id="auth-title">${t("auth.signup")}</h2>
      <form id="auth" novalidate>
        <label>${t("auth.email")}<input name="email" type="email" autocomplete="email" required></label>
        <label>${t("auth.password")}<input name="password" type="password" autocomplete="new-password" required minlength="8"></label>
        <div id="auth-error"></div>
        <div class="row"><button type="submit" name="signup" class="primary">${t("auth.signup")}</button>
        <button type="submit" name="login">${t("auth.login")}</button></div>
      </form>
    </section></div>`);
  const form = document.getElementById("auth");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const action = event.submitter?.name === "login" ? "login" : "register";
    try {
      await api("POST", `/v1/auth/${action}`, { email: form.email.value, password: form.password.value });
      // The router loads the signed-in user when it draws the next page.
      location.hash = "#/campaigns";
    } catch (error) {
      showError(document.getElementById("auth-error"), error);
    }
  });
}

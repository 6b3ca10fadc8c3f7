// The front page for visitors: what Sendpy does, and the sign-up / log-in form.

import { api } from "../api.js";
import { html, main, render, showError, showFieldProblems } from "../dom.js";
import { t } from "../i18n.js";

export function landingPage() {
  render(main(), html`<div class="landing">
    <h1 class="landing-title">${t("landing.title")}</h1><p class="lead">${t("landing.lead")}</p>
    <section class="landing-how"><h2>${t("landing.how")}</h2>
      <ol class="steps">${[1, 2, 3, 4].map((n) => html`<li>${t(`landing.step${n}`)}</li>`)}</ol>
      <h2>${t("landing.guarantees")}</h2>
      <ul class="checks">${[1, 2, 3, 4].map((n) => html`<li>${t(`landing.g${n}`)}</li>`)}</ul>
    </section>
    <section class="card landing-auth" aria-labelledby="auth-title" id="auth-card"></section></div>`);
  // One action per form, so that Enter does what the button says: a browser that has signed in
  // before opens on "Log in", a new one on "Create account"; a link switches between them.
  authForm(localStorage.getItem(RETURNING) ? "login" : "signup", false);
}

const RETURNING = "sendpy.returning";

// The form's own check before asking the server: each empty or short field says so next to it,
// and focus goes to the first of them (an empty submit left it on the button, with no word why).
function checked(form, mode) {
  const email = form.email.value.trim();
  const password = form.password.value;
  const problems = [
    [form.email, "email-problem", !email ? "auth.noemail" : !form.email.validity.valid ? "auth.bademail" : ""],
    [form.password, "password-problem", !password ? "auth.nopassword"
      : mode === "signup" && password.length < 8 ? "auth.shortpassword" : ""],
  ];
  // Said next to each field, and gone as the field is typed in (dom.js), as on every other form.
  return showFieldProblems(problems.map(([input, id, key]) => [input, id, key ? t(key) : ""]));
}

function authForm(mode, focus) {
  const card = document.getElementById("auth-card");
  const kept = card.querySelector("form");
  const email = kept ? kept.email.value : "";
  const other = mode === "login" ? "signup" : "login";
  render(card, html`<h2 id="auth-title" tabindex="-1">${t(`auth.${mode}`)}</h2>
    <form id="auth" novalidate>
      <label>${t("auth.email")}<input name="email" type="email" autocomplete="email" required></label>
      <span class="error field-error" id="email-problem"></span>
      <label>${t("auth.password")}<input name="password" type="password" required minlength="8"
        autocomplete="${mode === "login" ? "current-password" : "new-password"}"></label>
      <span class="error field-error" id="password-problem"></span>
      <div id="auth-error"></div>
      <div class="row"><button type="submit" class="primary">${t(`auth.${mode}`)}</button></div>
    </form>
    <p>${t(mode === "login" ? "auth.new" : "auth.have")}
      <button type="button" class="link" id="auth-switch">${t(`auth.${other}`)}</button></p>`);
  const form = document.getElementById("auth");
  form.email.value = email;
  document.getElementById("auth-switch").addEventListener("click", () => authForm(other, true));
  if (focus) document.getElementById("auth-title").focus();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!checked(form, mode)) return;
    try {
      await api("POST", `/v1/auth/${mode === "login" ? "login" : "register"}`,
                { email: form.email.value, password: form.password.value });
      localStorage.setItem(RETURNING, "1");
      // The router loads the signed-in user when it draws the next page.
      location.hash = "#/campaigns";
    } catch (error) {
      showError(document.getElementById("auth-error"), error);
    }
  });
}

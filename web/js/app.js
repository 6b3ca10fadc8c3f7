// The page: a hash router and the screens that are not the wizard or the campaign page.

import { api, ApiError } from "./api.js";
import { currentLanguage, setLanguage, t } from "./i18n.js";
import { campaignPage } from "./campaign.js";
import { guidesPage } from "./guides.js";
import { wizard } from "./wizard.js";

export const main = () => document.getElementById("app");

export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

export function showError(where, error) {
  const message = error instanceof ApiError || error instanceof Error ? error.message : String(error);
  where.innerHTML = `<p class="error" role="alert">${esc(message || t("common.error"))}</p>`;
}

let me = null;

async function loadMe() {
  try {
    me = await api("GET", "/v1/me");
  } catch {
    me = null;
  }
  return me;
}

function renderNav() {
  const nav = document.getElementById("nav");
  const lang = currentLanguage();
  const links = me
    ? `<a href="#/campaigns">${t("nav.campaigns")}</a><a href="#/new" class="primary-link">${t("nav.new")}</a>
       <a href="#/senders">${t("nav.senders")}</a><a href="#/guides">${t("nav.guides")}</a>
       <a href="#/keys">${t("nav.keys")}</a><a href="#/settings">${t("nav.settings")}</a>
       <button type="button" id="logout" class="link">${t("nav.logout")}</button>`
    : `<a href="#/guides">${t("nav.guides")}</a>`;
  nav.innerHTML = `${links}
    <label class="lang">${t("nav.language")}
      <select id="lang"><option value="en" ${lang === "en" ? "selected" : ""}>English</option>
      <option value="ru" ${lang === "ru" ? "selected" : ""}>Русский</option></select></label>`;
  document.getElementById("lang").addEventListener("change", (event) => {
    setLanguage(event.target.value);
    route();
  });
  document.getElementById("logout")?.addEventListener("click", async () => {
    await api("POST", "/v1/auth/logout");
    me = null;
    location.hash = "#/";
  });
}

function landing() {
  main().innerHTML = `
    <section class="hero">
      <h1>${t("landing.title")}</h1><p class="lead">${t("landing.lead")}</p>
    </section>
    <div class="columns">
      <section><h2>${t("landing.how")}</h2>
        <ol class="steps">${[1, 2, 3, 4].map((n) => `<li>${t(`landing.step${n}`)}</li>`).join("")}</ol>
        <h2>${t("landing.guarantees")}</h2>
        <ul class="checks">${[1, 2, 3, 4].map((n) => `<li>${t(`landing.g${n}`)}</li>`).join("")}</ul>
      </section>
      <section class="card" aria-labelledby="auth-title">
        <h2 id="auth-title">${t("auth.signup")}</h2>
        <form id="auth" novalidate>
          <label>${t("auth.email")}<input name="email" type="email" autocomplete="email" required></label>
          <label>${t("auth.password")}<input name="password" type="password" autocomplete="new-password" required minlength="8"></label>
          <div id="auth-error"></div>
          <div class="row"><button type="submit" name="signup" class="primary">${t("auth.signup")}</button>
          <button type="submit" name="login">${t("auth.login")}</button></div>
        </form>
      </section>
    </div>`;
  const form = document.getElementById("auth");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const action = event.submitter?.name === "login" ? "login" : "register";
    try {
      await api("POST", `/v1/auth/${action}`, { email: form.email.value, password: form.password.value });
      await loadMe();
      location.hash = "#/campaigns";
    } catch (error) {
      showError(document.getElementById("auth-error"), error);
    }
  });
}

async function campaignsList() {
  const { items } = await api("GET", "/v1/campaigns");
  main().innerHTML = `<h1>${t("nav.campaigns")}</h1>
    <p><a class="button primary" href="#/new">${t("nav.new")}</a></p>
    ${items.length ? `<table><thead><tr><th>${t("wizard.name")}</th><th>${t("review.subject")}</th><th>${t("campaign.progress")}</th></tr></thead><tbody>
      ${items.map((c) => `<tr><td><a href="${c.status === "draft" ? `#/wizard/${c.id}/1` : `#/campaign/${c.id}`}">${esc(c.name || c.id.slice(0, 8))}</a></td>
        <td>${esc(c.subject)}</td><td><span class="badge ${c.status}">${t(`state.${c.status}`)}</span> ${c.recipient_count || ""}</td></tr>`).join("")}
      </tbody></table>` : `<p>${t("common.none")}</p>`}`;
}

async function sendersList() {
  const { items } = await api("GET", "/v1/senders");
  main().innerHTML = `<h1>${t("nav.senders")}</h1>
    ${items.length ? `<table><thead><tr><th>${t("sender.from")}</th><th>${t("sender.host")}</th><th>${t("sender.limits")}</th><th></th></tr></thead><tbody>
      ${items.map((s) => `<tr><td>${esc(s.from_email)}<br><small>${s.verified ? "✓" : t("sender.notverified")}${s.paused_until ? " · " + t("sender.paused", { t: new Date(s.paused_until).toLocaleString() }) : ""}</small></td>
        <td>${esc(s.host)}:${s.port} (${esc(s.security)})</td>
        <td>${s.per_minute ?? "∞"} ${t("sender.perminute")}, ${s.per_day ?? "∞"} ${t("sender.perday")}</td>
        <td><a href="#/suppressions/${s.id}">${t("suppress.title")}</a>
          <button type="button" data-verify="${s.id}">${t("sender.verify")}</button>
          <button type="button" data-delete="${s.id}">${t("common.delete")}</button></td></tr>`).join("")}
      </tbody></table>` : `<p>${t("common.none")}</p>`}<div id="result" aria-live="polite"></div>`;
  const result = document.getElementById("result");
  main().querySelectorAll("[data-verify]").forEach((button) => button.addEventListener("click", async () => {
    result.textContent = t("sender.verifying");
    try {
      await api("POST", `/v1/senders/${button.dataset.verify}/verify`);
      sendersList();
    } catch (error) {
      showError(result, error.body?.error ? new Error(error.body.error.message) : error);
    }
  }));
  main().querySelectorAll("[data-delete]").forEach((button) => button.addEventListener("click", async () => {
    try {
      await api("DELETE", `/v1/senders/${button.dataset.delete}`);
      sendersList();
    } catch (error) {
      showError(result, error);
    }
  }));
}

async function suppressionsPage(senderId) {
  const { items } = await api("GET", `/v1/senders/${senderId}/suppressions`);
  main().innerHTML = `<h1>${t("suppress.title")}</h1>
    <form id="add"><label>${t("suppress.add")}<textarea name="emails" rows="4"></textarea></label>
    <button type="submit">${t("common.save")}</button></form><div id="result" aria-live="polite"></div>
    <ul>${items.map((i) => `<li>${esc(i.email)} <small>(${esc(i.reason)})</small>
      <button type="button" data-remove="${esc(i.email)}">${t("common.delete")}</button></li>`).join("")}</ul>`;
  document.getElementById("add").addEventListener("submit", async (event) => {
    event.preventDefault();
    const emails = event.target.emails.value.split(/\s+/).filter(Boolean);
    try {
      await api("POST", `/v1/senders/${senderId}/suppressions`, { emails });
      suppressionsPage(senderId);
    } catch (error) {
      showError(document.getElementById("result"), error);
    }
  });
  main().querySelectorAll("[data-remove]").forEach((button) => button.addEventListener("click", async () => {
    await api("DELETE", `/v1/senders/${senderId}/suppressions/${encodeURIComponent(button.dataset.remove)}`);
    suppressionsPage(senderId);
  }));
}

async function keysPage(created) {
  const { items } = await api("GET", "/v1/api-keys");
  main().innerHTML = `<h1>${t("nav.keys")}</h1>
    ${created ? `<p class="notice">${t("keys.shown")} <code>${esc(created)}</code></p>` : ""}
    <form id="create" class="row"><label>${t("keys.name")}<input name="name" maxlength="100"></label>
    <button type="submit">${t("keys.create")}</button></form>
    <ul>${items.map((k) => `<li><code>${esc(k.prefix)}…</code> ${esc(k.name)}
      <button type="button" data-revoke="${k.id}">${t("keys.revoke")}</button></li>`).join("")}</ul>`;
  document.getElementById("create").addEventListener("submit", async (event) => {
    event.preventDefault();
    const made = await api("POST", "/v1/api-keys", { name: event.target.name.value });
    keysPage(made.key);
  });
  main().querySelectorAll("[data-revoke]").forEach((button) => button.addEventListener("click", async () => {
    await api("DELETE", `/v1/api-keys/${button.dataset.revoke}`);
    keysPage();
  }));
}

function settingsPage() {
  main().innerHTML = `<h1>${t("nav.settings")}</h1><p>${esc(me.email)}</p>
    <form id="password" class="card"><h2>${t("settings.password")}</h2>
      <label>${t("settings.current")}<input name="current" type="password" autocomplete="current-password" required></label>
      <label>${t("settings.new")}<input name="new" type="password" autocomplete="new-password" required minlength="8"></label>
      <button type="submit">${t("common.save")}</button><div id="result" aria-live="polite"></div></form>`;
  document.getElementById("password").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = document.getElementById("result");
    try {
      await api("POST", "/v1/auth/password", { current_password: event.target.current.value, new_password: event.target.new.value });
      result.innerHTML = `<p class="notice">${t("settings.changed")}</p>`;
    } catch (error) {
      showError(result, error);
    }
  });
}

export async function route() {
  document.documentElement.lang = currentLanguage();
  document.getElementById("tagline").textContent = t("app.tagline");
  const [, page, id, step] = (location.hash || "#/").split("/");
  if (me === null) await loadMe();
  renderNav();
  const publicPages = { "": landing, guides: () => guidesPage(id) };
  try {
    if (page in publicPages && (!me || page === "guides")) return await publicPages[page]();
    if (!me) return landing();
    switch (page) {
      case "new": return await wizard(null, 1);
      case "wizard": return await wizard(id, Number(step) || 1);
      case "campaign": return await campaignPage(id);
      case "senders": return await sendersList();
      case "suppressions": return await suppressionsPage(id);
      case "keys": return await keysPage();
      case "settings": return settingsPage();
      default: return await campaignsList();
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      me = null;
      return landing();
    }
    showError(main(), error);
  }
}

window.addEventListener("hashchange", route);
route();

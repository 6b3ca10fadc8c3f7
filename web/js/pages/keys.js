// API keys: create (the key is shown once, with a copy button), list, revoke after a confirmation
// in the page's own dialog that names the key.

import { api } from "../api.js";
import { confirmAction, html, main, render, showError } from "../dom.js";
import { dateTime } from "../dates.js";
import { t } from "../i18n.js";

// In the page's language, not the browser's: «30 ноября 2026, 14:05» on a Russian page.
const when = (iso) => (iso ? dateTime(iso) : t("keys.never"));

export async function keysPage(created, focus) {
  const { items } = await api("GET", "/v1/api-keys");
  render(main(), html`<h1 tabindex="-1">${t("nav.keys")}</h1>
    ${created ? html`<div class="notice" id="new-key" tabindex="-1"><p>${t("keys.shown")}</p>
      <p class="row"><code id="new-key-value">${created}</code>
      <button type="button" id="copy-key">${t("keys.copy")}</button>
      <span id="copy-status" role="status"></span></p></div>` : ""}
    <form id="create" class="row" novalidate><label>${t("keys.name")}
      <input name="name" maxlength="100" required aria-describedby="create-error"></label>
      <button type="submit">${t("keys.create")}</button></form>
    <div id="create-error"></div>
    ${items.length ? html`<table><thead><tr><th scope="col">${t("keys.name")}</th><th scope="col">${t("keys.prefix")}</th>
      <th scope="col">${t("keys.created")}</th><th scope="col">${t("keys.used")}</th>
      <th scope="col"><span class="visually-hidden">${t("keys.actions")}</span></th></tr></thead>
      <tbody>${items.map((k) => html`<tr><td>${k.name}</td><td><code>${k.prefix}…</code></td>
        <td>${when(k.created_at)}</td><td>${when(k.last_used_at)}</td>
        <td><button type="button" data-revoke="${k.id}" data-name="${k.name}" data-prefix="${k.prefix}"
          aria-label="${t("keys.revokenamed", { name: k.name })}">${t("keys.revoke")}</button></td></tr>`)}</tbody></table>`
      : html`<p>${t("keys.none")}</p>`}
    <div id="revoke-error"></div>`);
  if (focus) document.querySelector(focus)?.focus();
  document.getElementById("copy-key")?.addEventListener("click", async () => {
    const status = document.getElementById("copy-status");
    try {
      await navigator.clipboard.writeText(created);
      status.textContent = t("keys.copied");
    } catch {
      // No clipboard permission (plain http, an old browser): select the key for Ctrl+C instead.
      getSelection().selectAllChildren(document.getElementById("new-key-value"));
      status.textContent = t("keys.select");
    }
  });
  const form = document.getElementById("create");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("create-error");
    render(error, "");
    if (!form.name.value.trim()) {
      showError(error, t("keys.needname"));
      form.name.focus();
      return;
    }
    try {
      const made = await api("POST", "/v1/api-keys", { name: form.name.value });
      await keysPage(made.key, "#new-key");
    } catch (failure) {
      showError(error, failure);
      form.name.focus();
    }
  });
  main().querySelectorAll("[data-revoke]").forEach((button) => button.addEventListener("click", async () => {
    const { name, prefix } = button.dataset;
    const revoke = await confirmAction({ title: t("keys.confirmtitle"), text: t("keys.confirm", { name, prefix }),
      action: t("keys.revoke"), opener: button });
    if (!revoke) return;
    try {
      await api("DELETE", `/v1/api-keys/${button.dataset.revoke}`);
      await keysPage(undefined, "h1");
    } catch (failure) {
      showError(document.getElementById("revoke-error"), failure);
      const shown = document.querySelector("#revoke-error p"); // the dialog is gone: read on at the reason
      shown.tabIndex = -1;
      shown.focus();
    }
  }));
}

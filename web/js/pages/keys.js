// API keys: create (the key is shown once), list by prefix, revoke.

import { api } from "../api.js";
import { html, main, render } from "../dom.js";
import { t } from "../i18n.js";

export async function keysPage(created) {
  const { items } = await api("GET", "/v1/api-keys");
  render(main(), html`<h1>${t("nav.keys")}</h1>
    ${created ? html`<p class="notice">${t("keys.shown")} <code>${created}</code></p>` : ""}
    <form id="create" class="row"><label>${t("keys.name")}<input name="name" maxlength="100"></label>
    <button type="submit">${t("keys.create")}</button></form>
    <ul>${items.map((k) => html`<li><code>${k.prefix}…</code> ${k.name}
      <button type="button" data-revoke="${k.id}">${t("keys.revoke")}</button></li>`)}</ul>`);
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

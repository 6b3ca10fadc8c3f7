// A sender's unsubscribed (suppressed) addresses: list, add, remove.

import { api } from "../api.js";
import { html, main, render, showError } from "../dom.js";
import { t } from "../i18n.js";

export async function suppressionsPage(senderId) {
  const { items } = await api("GET", `/v1/senders/${senderId}/suppressions`);
  render(main(), html`<h1>${t("suppress.title")}</h1>
    <form id="add"><label>${t("suppress.add")}<textarea name="emails" rows="4"></textarea></label>
    <button type="submit">${t("common.save")}</button></form><div id="result" aria-live="polite"></div>
    <ul>${items.map((i) => html`<li>${i.email} <small>(${i.reason})</small>
      <button type="button" data-remove="${i.email}">${t("common.delete")}</button></li>`)}</ul>`);
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

// The user's mailboxes (SMTP senders): limits, verification, removal.

import { api } from "../api.js";
import { html, main, render, showError } from "../dom.js";
import { t } from "../i18n.js";

export async function sendersPage() {
  const { items } = await api("GET", "/v1/senders");
  render(main(), html`<h1>${t("nav.senders")}</h1>
    ${items.length ? html`<table><thead><tr><th>${t("sender.from")}</th><th>${t("sender.host")}</th><th>${t("sender.limits")}</th><th></th></tr></thead><tbody>
      ${items.map((s) => html`<tr><td>${s.from_email}<br><small>${s.verified ? "✓" : t("sender.notverified")}${s.paused_until ? " · " + t("sender.paused", { t: new Date(s.paused_until).toLocaleString() }) : ""}</small></td>
        <td>${s.host}:${s.port} (${s.security})</td>
        <td>${s.per_minute ?? "∞"} ${t("sender.perminute")}, ${s.per_day ?? "∞"} ${t("sender.perday")}</td>
        <td><button type="button" data-verify="${s.id}">${t("sender.verify")}</button>
          <button type="button" data-delete="${s.id}">${t("common.delete")}</button></td></tr>`)}
      </tbody></table>` : html`<p>${t("common.none")}</p>`}<div id="result" aria-live="polite"></div>`);
  const result = document.getElementById("result");
  main().querySelectorAll("[data-verify]").forEach((button) => button.addEventListener("click", async () => {
    result.textContent = t("sender.verifying");
    try {
      await api("POST", `/v1/senders/${button.dataset.verify}/verify`);
      sendersPage();
    } catch (error) {
      showError(result, error.body?.error ? new Error(error.body.error.message) : error);
    }
  }));
  main().querySelectorAll("[data-delete]").forEach((button) => button.addEventListener("click", async () => {
    try {
      await api("DELETE", `/v1/senders/${button.dataset.delete}`);
      sendersPage();
    } catch (error) {
      showError(result, error);
    }
  }));
}

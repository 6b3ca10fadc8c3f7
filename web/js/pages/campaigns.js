// The list of the user's campaigns: drafts open in the wizard, the others on their campaign page.

import { api } from "../api.js";
import { html, main, render } from "../dom.js";
import { currentLanguage, number, t } from "../i18n.js";

export async function campaignsPage() {
  const { items } = await api("GET", "/v1/campaigns");
  render(main(), html`<h1>${t("nav.campaigns")}</h1>
    <p><a class="button primary" href="#/new">${t("nav.new")}</a></p>
    ${items.length ? html`<div class="scroll" tabindex="0" role="region" aria-label="${t("nav.campaigns")}"><table><thead><tr><th>${t("wizard.name")}</th><th>${t("review.subject")}</th><th>${t("campaign.progress")}</th></tr></thead><tbody>
      ${items.map((c) => html`<tr><td><a href="${c.status === "draft" ? `#/wizard/${c.id}/1` : `#/campaign/${c.id}`}">${c.name || c.subject || t("campaign.untitled", { date: new Date(c.created_at).toLocaleString(currentLanguage()) })}</a></td>
        <td>${c.subject}</td><td><span class="badge ${c.status}">${t(`state.${c.status}`)}</span> ${c.recipient_count ? number(c.recipient_count) : ""}</td></tr>`)}
      </tbody></table></div>` : html`<p>${t("common.none")}</p>`}`);
}

// The list of the user's campaigns: drafts open in the wizard, the others on their campaign page.

import { api } from "../api.js";
import { dateTime } from "../dates.js";
import { html, main, render } from "../dom.js";
import { currentLanguage, number, percent, t } from "../i18n.js";

// How far each campaign got is read from its own page's answer (the list does not count the
// recipients of every campaign): for the first ones listed, which are the recent ones.
const DETAILED = 20;

function progressCell(c, detail = null) {
  const waiting = detail?.waiting_for && ["queued", "sending"].includes(c.status);
  const badge = html`<span class="badge ${c.status}">${t(waiting ? "state.waiting" : `state.${c.status}`)}</span>`;
  if (c.status === "scheduled" && c.scheduled_at) return html`${badge} ${t("campaigns.scheduledat", { at: dateTime(c.scheduled_at) })}`;
  const total = detail?.recipient_count ?? c.recipient_count;
  if (!detail || !total) return html`${badge} ${c.recipient_count ? number(c.recipient_count) : ""}`;
  const sent = detail.counts.sent + detail.counts.bounced;
  const share = percent(Math.floor((sent / total) * 100) / 100);
  return html`${badge} ${t("campaigns.sentof", { sent: number(sent), total: number(total), percent: share })}`;
}

export async function campaignsPage() {
  const { items } = await api("GET", "/v1/campaigns");
  render(main(), html`<h1>${t("nav.campaigns")}</h1>
    <p><a class="button primary" href="#/new">${t("nav.new")}</a></p>
    ${items.length ? html`<div class="scroll" tabindex="0" role="region" aria-label="${t("nav.campaigns")}"><table><thead><tr><th>${t("wizard.name")}</th><th>${t("review.subject")}</th><th>${t("campaign.progress")}</th></tr></thead><tbody>
      ${items.map((c) => html`<tr><td><a href="${c.status === "draft" ? `#/wizard/${c.id}/1` : `#/campaign/${c.id}`}">${c.name || c.subject || t("campaign.untitled", { date: new Date(c.created_at).toLocaleString(currentLanguage()) })}</a></td>
        <td>${c.subject}</td><td data-progress="${c.id}">${progressCell(c)}</td></tr>`)}
      </tbody></table></div>` : html`<p>${t("common.none")}</p>`}`);
  const started = items.filter((c) => !["draft", "scheduled"].includes(c.status)).slice(0, DETAILED);
  await Promise.all(started.map(async (c) => {
    const detail = await api("GET", `/v1/campaigns/${c.id}`).catch(() => null);
    const cell = main().querySelector(`[data-progress="${c.id}"]`);
    if (detail && cell) render(cell, progressCell(c, detail));
  }));
}

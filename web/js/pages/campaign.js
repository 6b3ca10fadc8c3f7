// A campaign being sent: live progress, controls, recipients with their SMTP replies.

import { api, ApiError } from "../api.js";
import { html, main, render, showError } from "../dom.js";
import { dateTime, timeZoneId, zoneName } from "../dates.js";
import { currentLanguage, inOwnLanguage, number, percent, t } from "../i18n.js";
import { count, moment, planText, span } from "../plan.js";

// "sent" counts only what did not bounce later: delivered = sent − bounced.
const STATES = ["sent", "bounced", "failed", "skipped", "pending", "sending"];
// A campaign not started yet has no recipients: what its contact file will give (the API's planned).
const PLANNED = ["recipients", "suppressed", "duplicates", "problems"];
let timer = null;
// The recipients' columns; on a phone each row is a card, its cells labelled with these (styles.css).
const COLUMNS = [() => "#", () => t("auth.email"), () => t("campaign.state"), () => t("campaign.reply"), () => t("campaign.attempts")];

// Replies Sendpy writes itself are codes (and the retry policy's last word, as stored before attempts
// were data, a fixed sentence): they are read in the reader's language; a server's own words are
// shown as they came.
const OWN_REPLIES = ["suppressed", "cancelled", "duplicate"];
const GAVE_UP = /^(\d+) попыток не удались; gave up after \1 attempts: ([\s\S]*)$/;

function replyText(reply) {
  if (!reply) return "";
  if (OWN_REPLIES.includes(reply)) return t(`reply.${reply}`);
  const gaveUp = reply.match(GAVE_UP);
  if (gaveUp) return t("reply.gaveup", { n: number(gaveUp[1]), reply: gaveUp[2] });
  return inOwnLanguage(reply);
}

// Attempts are data: said with the plural the number takes («1 попытка, 2 попытки, 5 попыток»). A
// recipient skipped for the suppression list was never attempted, though one put on the list after
// loading has the claim that found it counted as one (shared/recipients.py counts claims).
const attemptsText = (r) => (r.attempts && !(r.status === "skipped" && r.reply === "suppressed")
  ? count(r.attempts, "attempt") : "—");

// A sentence ending in a moment with an abbreviated month («6 дек.») ends with that dot, not two.
const oneDot = (text) => text.replace(/\.\.(?=\s|$)/g, ".");

// A campaign behind an earlier one of the same account (they share its limits, first come first
// served): which one, and when its own first email is due (the plan counts the mail ahead).
function waitingText(c) {
  const ahead = c.waiting_for;
  if (!ahead) return "";
  const name = ahead.name || ahead.subject || t("campaign.unnamed");
  const text = ahead.others ? t("campaign.waitingforothers", { name, n: number(ahead.others) })
    : t("campaign.waitingfor", { name });
  // Some already went (before an earlier campaign of the account was resumed): its *next* emails.
  const when = (c.counts?.sent || 0) > 0 ? "campaign.resumesat" : "campaign.startsat";
  return c.plan?.count && c.status !== "scheduled" ? oneDot(`${text} ${t(when, { at: moment(c.plan.first_at) })}`) : text;
}

// The API's next_batch (when the next emails are due and why) in the reader's words and clock.
function nextBatchText(next) {
  const key = `next.${next.reason}`;
  const text = t(key, { at: moment(next.at), n: number(next.limit), detail: next.detail ?? "" });
  return oneDot(text === key ? t("next.continuing", { at: moment(next.at) }) : text);
}

function reasonText(c) {
  // The same plan the review showed when it was scheduled, when there is more to it than the time:
  // the sender busy with another campaign first, or days of sending under its daily limit.
  if (c.status === "scheduled") {
    const planned = c.plan?.count && (c.waiting_for || c.plan.days > 1);
    return [t("campaign.scheduledfor", { at: dateTime(c.scheduled_at), zone: zoneName() }), waitingText(c),
      planned && oneDot(t("campaign.scheduledplan", { plan: planText(c.plan, { startsAt: c.scheduled_at }) }))]
      .filter(Boolean).join(" ");
  }
  if (c.status === "cancelled" && c.recipient_count) {
    const sent = c.counts.sent + c.counts.bounced;
    const left = c.recipient_count - sent - c.counts.failed;
    return t("campaign.cancelledsummary", { sent: number(sent), total: number(c.recipient_count), left: number(left) });
  }
  // status_reason may say only this same wait (in UTC, in both languages): then the page's own words.
  const stored = c.next_batch?.in_status_reason ? "" : inOwnLanguage(c.status_reason);
  return [stored, waitingText(c), c.next_batch && nextBatchText(c.next_batch)].filter(Boolean).join(" ");
}

function eta(campaign) {
  if (campaign.plan && campaign.plan.days > 1) return planText(campaign.plan, { resumed: campaign.counts.sent > 0 });
  if (campaign.eta_seconds == null) return "";
  return campaign.eta_seconds < 60 ? t("campaign.etaunder") : t("campaign.eta", { t: span(campaign.eta_seconds) });
}

export async function campaignPage(campaignId) {
  clearInterval(timer);
  try {
    await api("GET", `/v1/campaigns/${campaignId}`);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
    render(main(), html`<h1>${t("campaign.notfound")}</h1><p><a href="#/campaigns">${t("nav.campaigns")}</a></p>`);
    return;
  }
  render(main(), html`<h1 id="title"></h1>
    <section class="card" aria-labelledby="progress-title"><h2 id="progress-title">${t("campaign.progress")}</h2>
      <div class="progress-line"><progress id="bar" max="100" value="0"></progress><span id="percent">${percent(0)}</span></div>
      <p id="state-line" tabindex="-1"><span id="status" class="badge"></span> <span id="reason"></span></p>
      <dl class="stats" id="counts"></dl><p id="rate"></p>
      <div class="row"><button type="button" id="send-now" hidden>${t("campaign.sendnow")}</button>
        <button type="button" id="unschedule" hidden>${t("campaign.unschedule")}</button>
        <button type="button" id="pause">${t("campaign.pause")}</button>
        <button type="button" id="resume">${t("campaign.resume")}</button>
        <button type="button" id="cancel" class="danger">${t("campaign.cancel")}</button>
        <a class="button" id="export" href="/v1/campaigns/${campaignId}/export.csv?lang=${currentLanguage()}&tz=${encodeURIComponent(timeZoneId())}&zone=${encodeURIComponent(zoneName())}" download>${t("campaign.export")}</a></div>
      <div id="control-error" aria-live="polite"></div></section>
    <section class="card"><p id="recipients-later" hidden></p><div id="recipient-list"><form id="filter" class="row">
      <label>${t("campaign.search")}<input name="q" type="search"></label>
      <label>${t("campaign.state")}<select name="status"><option value="">${t("campaign.all")}</option>
        ${STATES.map((s) => html`<option value="${s}">${t(`state.${s}`)}</option>`)}</select></label></form>
      <div class="scroll" tabindex="0" role="region" aria-label="${t("campaign.recipients")}"><table class="stacked" role="table"><thead role="rowgroup"><tr role="row">${COLUMNS.map((c) => html`<th role="columnheader">${c()}</th>`)}</tr></thead>
      <tbody id="recipients" role="rowgroup"></tbody></table></div>
      <p class="row"><span id="shown" aria-live="polite"></span> <button type="button" id="clear-search" hidden>${t("campaign.clearsearch")}</button>
        <button type="button" id="more" hidden>${t("campaign.more")}</button></p>
      <p class="hint" id="order-hint">${t("campaign.order")}</p></div></section>
    <dialog id="confirm-send-now" aria-labelledby="send-now-title"><form method="dialog">
      <h3 id="send-now-title">${t("campaign.sendnowtitle")}</h3><p id="send-now-text"></p>
      <div class="row"><button class="primary" value="send">${t("campaign.sendnow")}</button><button value="cancel" autofocus>${t("common.cancel")}</button></div>
    </form></dialog>
    <dialog id="confirm-cancel" aria-labelledby="cancel-title"><form method="dialog">
      <h3 id="cancel-title">${t("campaign.canceltitle")}</h3><p id="cancel-text"></p>
      <div class="row"><button class="danger" value="cancel-campaign">${t("campaign.cancelyes")}</button><button value="keep" autofocus>${t("campaign.cancelno")}</button></div>
    </form></dialog>`);
  let latest = null; // the campaign as last polled: the send-now question says what will go out
  let scheduled = false; // no recipient rows to list until it starts

  const refresh = async () => {
    if (!document.getElementById("bar")) return clearInterval(timer);
    const c = await api("GET", `/v1/campaigns/${campaignId}`);
    latest = c;
    const total = c.recipient_count || 0;
    const done = c.counts.sent + c.counts.bounced + c.counts.failed + c.counts.skipped;
    // A cancelled campaign's skipped recipients were never sent: its bar shows what was tried.
    const tried = c.status === "cancelled" ? done - c.counts.skipped : done;
    const share = total ? Math.floor((tried / total) * 100) / 100 : 0; // 100 % only once all are done
    document.getElementById("title").textContent = c.name || c.subject || t("campaign.untitled", { date: new Date(c.created_at).toLocaleString(currentLanguage()) });
    document.getElementById("bar").value = Math.round(share * 100);
    document.querySelector(".progress-line").hidden = c.status === "scheduled"; // nothing can have gone yet
    document.getElementById("percent").textContent = percent(share);
    const status = document.getElementById("status");
    // Started, but behind another campaign of the sender: it is not sending yet, it waits its turn.
    const waiting = c.waiting_for && ["queued", "sending"].includes(c.status);
    status.textContent = t(waiting ? "state.waiting" : `state.${c.status}`);
    status.className = `badge ${c.status}`;
    document.getElementById("reason").textContent = reasonText(c);
    document.getElementById("send-now").hidden = c.status !== "scheduled";
    document.getElementById("unschedule").hidden = c.status !== "scheduled";
    // A scheduled campaign has no recipient rows yet: they are read from its file at the start.
    scheduled = c.status === "scheduled";
    document.getElementById("recipient-list").hidden = scheduled;
    document.getElementById("export").hidden = scheduled; // nothing to export before it starts
    const later = document.getElementById("recipients-later");
    later.hidden = !scheduled;
    later.textContent = scheduled ? t("campaign.later", { n: number(c.planned?.recipients ?? 0) }) : "";
    render(document.getElementById("counts"), c.status === "scheduled" && c.planned
      ? PLANNED.map((k) => html`<div><dt>${t(`planned.${k}`)}</dt><dd id="planned-${k}">${number(c.planned[k])}</dd></div>`)
      : STATES.map((s) => html`<div><dt>${t(`state.${s}`)}</dt><dd id="count-${s}">${number(c.counts[s])}</dd></div>`));
    // Waiting behind another campaign, "0 a minute" says nothing: the reason above says why and until when.
    const speed = c.waiting_for ? "" : t("campaign.rate", { n: number(c.rate_per_minute) });
    document.getElementById("rate").textContent = c.status === "sending" ? [speed, eta(c)].filter(Boolean).join(" · ") : "";
    document.getElementById("pause").hidden = !["queued", "sending"].includes(c.status);
    document.getElementById("resume").hidden = c.status !== "paused";
    document.getElementById("cancel").hidden = !["scheduled", "queued", "sending", "paused"].includes(c.status);
    if (["finished", "cancelled"].includes(c.status)) clearInterval(timer);
  };
  // A page of 100 at a time; "show more" appends the next page after the last position shown.
  let nextAfter = null;
  let paged = false; // once more pages are shown, the live refresh leaves the list alone
  const row = (r) => html`<tr role="row">${[r.position, r.email, html`<span class="badge ${r.status}">${t(`state.${r.status}`)}</span>`,
    replyText(r.reply), attemptsText(r)].map((value, i) => html`<td role="cell" data-label="${COLUMNS[i]()}">${value}</td>`)}</tr>`;
  const loadRecipients = async (more = false) => {
    const form = document.getElementById("filter");
    const params = new URLSearchParams({ limit: "100" });
    if (form.q.value) params.set("q", form.q.value);
    if (form.status.value) params.set("status", form.status.value);
    if (more && nextAfter != null) params.set("after", String(nextAfter));
    const { items, next_after: after } = await api("GET", `/v1/campaigns/${campaignId}/recipients?${params}`);
    const body = document.getElementById("recipients");
    if (more) {
      const extra = document.createElement("tbody");
      render(extra, items.map(row));
      const added = [...extra.rows];
      body.append(...added);
      // The button may now be far below the screen: the keyboard goes on from the first new row.
      if (added[0]) {
        added[0].tabIndex = -1;
        added[0].focus();
      }
    } else {
      render(body, items.map(row));
    }
    paged = more; // a new filter starts from the first page again
    nextAfter = after;
    document.getElementById("more").hidden = after == null;
    // An empty page says why: the search found nothing (with the way out of it), or the state has nobody.
    const state = form.status.value && t(`state.${form.status.value}`);
    const none = !body.rows.length && (form.q.value ? t("campaign.nothingfound", { q: form.q.value })
      : state && t("campaign.noneinstate", { state }));
    // Of how many: the campaign's recipients, or those in the state chosen; a search's total is not known.
    const total = form.q.value ? null : form.status.value ? latest?.counts?.[form.status.value] : latest?.recipient_count;
    document.getElementById("shown").textContent = none || (total != null && total >= body.rows.length
      ? t("campaign.shownof", { n: number(body.rows.length), total: number(total) }) : t("campaign.shown", { n: number(body.rows.length) }));
    document.getElementById("clear-search").hidden = !(none && form.q.value);
  };

  // The button pressed is usually hidden by its own effect (Pause shows Resume): focus goes to its
  // counterpart, or to the line that says the new state — never back to the top of the page.
  const COUNTERPART = { pause: "resume", resume: "pause" };
  const control = (action) => async () => {
    try {
      await api("POST", `/v1/campaigns/${campaignId}/${action}`);
      await refresh();
      const next = document.getElementById(COUNTERPART[action] ?? "");
      (next && !next.hidden ? next : document.getElementById("state-line")).focus();
      clearInterval(timer);
      timer = setInterval(tick, 1500);
    } catch (error) {
      showError(document.getElementById("control-error"), error);
    }
  };
  const tick = async () => {
    try {
      await refresh();
      if (!paged && !scheduled) await loadRecipients();
    } catch {
      /* a missed poll is retried on the next tick */
    }
  };
  // Sending a scheduled campaign now asks first, as the wizard does; Cancel is the default.
  const startKey = crypto.randomUUID();
  const sendNow = document.getElementById("confirm-send-now");
  document.getElementById("send-now").addEventListener("click", () => {
    // The plan were it sent now (plan_now), as the page shows it once confirmed — not the scheduled one.
    const plan = latest?.plan_now ?? latest?.plan;
    const count = plan?.count ?? latest?.recipient_count ?? 0;
    document.getElementById("send-now-text").textContent =
      t("review.confirm", { n: number(count), plan: planText(plan, { behind: latest?.waiting_for }) }).replace(/\.\.$/, ".");
    sendNow.returnValue = ""; // Escape leaves the last answer in place: start from none
    sendNow.showModal();
  });
  sendNow.addEventListener("close", async () => {
    if (sendNow.returnValue !== "send") return document.getElementById("send-now").focus();
    try {
      await api("POST", `/v1/campaigns/${campaignId}/start`, undefined, { "Idempotency-Key": startKey });
      await refresh();
      document.getElementById("state-line").focus(); // the button is gone: the new state is what to read
    } catch (error) {
      showError(document.getElementById("control-error"), error);
    }
  });
  document.getElementById("unschedule").addEventListener("click", async () => {
    try {
      await api("DELETE", `/v1/campaigns/${campaignId}/schedule`);
      // The review keeps the time that was set, and says the campaign is a draft again.
      sessionStorage.setItem(`sendpy.unscheduled.${campaignId}`, latest?.scheduled_at ?? "");
      location.hash = `#/wizard/${campaignId}/4`;
    } catch (error) {
      showError(document.getElementById("control-error"), error);
    }
  });
  document.getElementById("pause").addEventListener("click", control("pause"));
  document.getElementById("resume").addEventListener("click", control("resume"));
  // Cancelling asks in the page's own dialog, as sending does; «Нет» is the default.
  const cancelDialog = document.getElementById("confirm-cancel");
  document.getElementById("cancel").addEventListener("click", async () => {
    const c = latest ?? await api("GET", `/v1/campaigns/${campaignId}`).catch(() => null); // pressed before the first poll
    const left = c ? (c.counts.pending + c.counts.sending || c.planned?.recipients || 0) : 0;
    document.getElementById("cancel-text").textContent = t("campaign.confirmcancel", { n: number(left) });
    cancelDialog.returnValue = "";
    cancelDialog.showModal();
  });
  const cancelNow = control("cancel");
  cancelDialog.addEventListener("close", () => (cancelDialog.returnValue === "cancel-campaign" ? cancelNow()
    : document.getElementById("cancel").focus()));
  document.getElementById("filter").addEventListener("input", () => loadRecipients());
  document.getElementById("more").addEventListener("click", () => loadRecipients(true));
  document.getElementById("clear-search").addEventListener("click", async () => {
    const search = document.getElementById("filter").q;
    search.value = "";
    await loadRecipients();
    search.focus(); // the button is gone: typing another search goes on where it is typed
  });
  document.getElementById("filter").addEventListener("submit", (event) => event.preventDefault());
  await tick();
  timer = setInterval(tick, 1500);
}

// The user's mailboxes (SMTP senders): limits, verification, removal, and each one's bounce
// reading — the IMAP account its bounce notices land in, the live check of it, and what the bounce
// reader found (last look, bounces, the 30-day bounce rate, with a warning from 5 %). The bounce
// API is functions/bounces_api.py:
//   GET  /v1/senders/{id}/imap         the settings and the status
//   PUT  /v1/senders/{id}/imap         store the settings; the API then checks them live (200 / 422)
//   POST /v1/senders/{id}/imap/verify  check the stored settings live again (200 / 422)
// A 422 carries the problem explained in the request's language, and the status.
// (The panel lives here, not in a module of its own: every module in pages/ is a page the router imports.)

import { api, ApiError } from "../api.js";
import { clearFieldProblem, confirmAction, html, main, render, showError, showFieldProblems } from "../dom.js";
import { currentLanguage, number, t } from "../i18n.js";
import { checkState, editTitle, hostName, limitWarning, passwordRule, providerTitle, senderChecks } from "../sender_form.js";

// Why a sender cannot be deleted yet: its unfinished campaigns, each a link to its page and in its state.
function heldText(held) {
  const quote = (text) => (currentLanguage() === "ru" ? `«${text}»` : `“${text}”`);
  const names = held.map((c) => html`<a href="#/campaign/${c.id}">${quote(c.name || c.subject || t("campaign.unnamed"))}</a> (${t(`state.${c.status}`)})`);
  const parts = t(held.length === 1 ? "sender.heldone" : "sender.heldmany", { campaigns: "\u0000" }).split("\u0000");
  return html`<div class="error" role="alert"><p><strong>${t("sender.heldtitle")}.</strong> ${parts[0]}${names.map((n, i) => html`${i ? ", " : ""}${n}`)}${parts[1] ?? ""}</p></div>`;
}

// A field of the edit form with its own problem line (dom.js showFieldProblems).
const field = (label, input, name) => html`<div><label>${label}${input}</label><span class="error field-error" id="edit-problem-${name}"></span></div>`;

export async function sendersPage() {
  const { items } = await api("GET", "/v1/senders");
  render(main(), html`<h1>${t("nav.senders")}</h1>
    ${items.length ? html`<div class="scroll" tabindex="0" role="region" aria-label="${t("senders.table")}"><table class="stacked" role="table"><thead role="rowgroup"><tr role="row"><th role="columnheader">${t("sender.from")}</th><th role="columnheader">${t("sender.host")}</th><th role="columnheader">${t("sender.limits")}</th><th role="columnheader"></th></tr></thead><tbody role="rowgroup">
      ${items.map((s) => html`<tr role="row"><td role="cell">${s.from_email}<br><small>${s.verified ? "✓" : t(checkState(s))}${s.paused_until ? " · " + t("sender.paused", { t: new Date(s.paused_until).toLocaleString(currentLanguage()) }) : ""}</small></td>
        <td role="cell" data-label="${t("sender.host")}">${s.host}:${s.port} (${t(`security.${s.security}`)})</td>
        <td role="cell" data-label="${t("sender.limits")}">${s.per_minute ? number(s.per_minute) : "∞"} ${t("sender.perminute")}, ${s.per_day ? number(s.per_day) : "∞"} ${t("sender.perday")}</td>
        <td role="cell"><button type="button" data-imap="${s.id}" aria-expanded="false" aria-controls="imap-panel"
            aria-label="${t("imap.title", { email: s.from_email })}">${t("imap.open")}</button>
          <button type="button" data-edit="${s.id}" aria-label="${t("sender.edit")}: ${s.from_email}">${t("sender.edit")}</button>
          <button type="button" data-verify="${s.id}" aria-label="${t("sender.verify")}: ${s.from_email}">${t("sender.verify")}</button>
          <button type="button" data-delete="${s.id}" aria-label="${t("common.delete")}: ${s.from_email}">${t("common.delete")}</button></td></tr>`)}
      </tbody></table></div>` : html`<p id="no-senders">${t("senders.empty")}</p><p><a class="button primary" href="#/new">${t("senders.start")}</a></p>`}<div id="result" aria-live="polite"></div>
    <section id="imap-panel" class="card" aria-labelledby="imap-title" hidden></section>
    <dialog id="edit-sender" aria-labelledby="edit-title"><form class="grid" novalidate>
      <h2 id="edit-title"></h2>
      ${field(t("sender.from"), html`<input name="from_email" type="email" required>`, "from_email")}
      <label>${t("sender.name")}<input name="from_name" maxlength="200"></label>
      ${field(t("sender.host"), html`<input name="host" required>`, "host")}
      ${field(t("sender.port"), html`<input name="port" type="number" min="1" max="65535" required>`, "port")}
      <label>${t("sender.security")}<select name="security"><option value="tls">SSL/TLS (465)</option>
        <option value="starttls">STARTTLS (587)</option><option value="none">—</option></select></label>
      <label>${t("sender.username")}<input name="username"></label>
      <div><label>${t("sender.password")}<input name="password" type="password" autocomplete="new-password" aria-describedby="edit-password-hint"></label>
        <p class="hint" id="edit-password-hint"></p><span class="error field-error" id="edit-problem-password"></span></div>
      ${field(t("sender.perminute"), html`<input name="per_minute" type="number" min="1" aria-describedby="edit-limits-warning">`, "per_minute")}
      ${field(t("sender.perday"), html`<input name="per_day" type="number" min="1" aria-describedby="edit-limits-warning">`, "per_day")}
      <p class="warning wide" id="edit-limits-warning" aria-live="polite"></p>
      <div id="edit-result" aria-live="polite"></div>
      <div class="row"><button type="submit" class="primary">${t("sender.saveverify")}</button>
        <button type="button" data-close>${t("common.cancel")}</button></div>
    </form></dialog>`);
  const result = document.getElementById("result");
  const imap = imapPanel(document.getElementById("imap-panel"));
  main().querySelectorAll("[data-imap]").forEach((button) => button.addEventListener("click", () => {
    imap.open(items.find((s) => s.id === Number(button.dataset.imap)), button);
  }));
  main().querySelectorAll("[data-verify]").forEach((button) => button.addEventListener("click", async () => {
    result.textContent = t("sender.verifying");
    try {
      await api("POST", `/v1/senders/${button.dataset.verify}/verify`);
      sendersPage();
    } catch (error) {
      showError(result, error.body?.error ? new Error(error.body.error.message) : error);
    }
  }));
  const focusProblem = (where) => {
    const shown = where.querySelector(".error");
    if (shown) {
      shown.tabIndex = -1;
      shown.focus();
    }
  };
  main().querySelectorAll("[data-delete]").forEach((button) => button.addEventListener("click", async () => {
    const sender = items.find((s) => s.id === Number(button.dataset.delete));
    if (sender.held_by?.length) { // it cannot go: said at once, naming what holds it, instead of a question
      render(result, heldText(sender.held_by));
      return focusProblem(result);
    }
    const yes = await confirmAction({ title: t("sender.deletetitle"), text: t("sender.deletetext", { email: sender.from_email }),
      action: t("common.delete"), opener: button });
    if (!yes) return;
    try {
      await api("DELETE", `/v1/senders/${sender.id}`);
      await sendersPage();
      document.querySelector("#app h1")?.focus();
    } catch (error) {
      showError(result, error.body?.error ? new Error(error.body.error.message) : error);
      focusProblem(result);
    }
  }));
  const editing = document.getElementById("edit-sender");
  const form = editing.querySelector("form");
  editing.querySelector("[data-close]").addEventListener("click", () => editing.close());
  const password = passwordRule(form, document.getElementById("edit-password-hint"), "edit-problem-password");
  let sender = null;
  let presets = [];
  // The provider whose limits apply: the sender's preset while its server is unchanged, else the server's.
  const warnLimits = limitWarning(form, document.getElementById("edit-limits-warning"), () => {
    const host = hostName(form.host.value);
    const byHost = presets.find((p) => p.host === host);
    return sender && host === sender.host ? presets.find((p) => p.key === sender.preset) || byHost : byHost;
  });
  main().querySelectorAll("[data-edit]").forEach((button) => button.addEventListener("click", () => {
    sender = items.find((s) => s.id === Number(button.dataset.edit));
    document.getElementById("edit-title").textContent = editTitle(sender);
    for (const name of ["from_email", "from_name", "host", "port", "security", "username", "per_minute", "per_day"]) {
      form[name].value = sender[name] ?? "";
    }
    form.password.value = "";
    password.edit(sender);
    for (const [input, id] of senderChecks(form, password, "edit-problem-", true)) clearFieldProblem(input, id);
    warnLimits();
    loadPresets().then((list) => { presets = list; warnLimits(); }).catch(() => {}); // no list, no warning
    document.getElementById("edit-result").replaceChildren();
    editing.onclose = () => button.focus();
    const where = document.getElementById("edit-result");
    // The server's answer was about what was sent before: it goes once the form is typed in or sent again.
    form.oninput = () => { if (where.querySelector(".error")) where.replaceChildren(); };
    form.onsubmit = async (event) => {
      event.preventDefault();
      form.oninput();
      if (!showFieldProblems(senderChecks(form, password, "edit-problem-", true))) return;
      const body = { from_email: form.from_email.value, from_name: form.from_name.value, host: form.host.value,
        port: Number(form.port.value), security: form.security.value, username: form.username.value || form.from_email.value,
        per_minute: form.per_minute.value ? Number(form.per_minute.value) : null,
        per_day: form.per_day.value ? Number(form.per_day.value) : null };
      if (form.password.value) body.password = form.password.value;
      try {
        await api("PATCH", `/v1/senders/${sender.id}`, body);
        render(where, html`<p>${t("sender.verifying")}</p>`);
        await api("POST", `/v1/senders/${sender.id}/verify`);
        editing.onclose = null;
        editing.close();
        await sendersPage();
        render(document.getElementById("result"), html`<p class="notice">${t("sender.verified")}</p>`);
        // The page was drawn anew: focus goes back to this sender's own «Изменить», not to <body>.
        main().querySelector(`[data-edit="${sender.id}"]`)?.focus();
      } catch (error) {
        if (error.code === "smtp_password_required") { // another server: the saved password is not sent there unasked
          render(where, html``);
          showFieldProblems([[form.password, "edit-problem-password", error.message]]);
        } else {
          showError(where, error.body?.error ? new Error(error.body.error.message) : error);
          focusProblem(where);
        }
      }
    };
    editing.showModal();
    form.from_email.focus();
  }));
}

// Bounce reading (IMAP), one sender at a time.

const IMAP_PORT = 993;
const CUSTOM = "custom";
const OFF = "off";

let presetList = null;

function loadPresets() {
  presetList ??= api("GET", "/v1/presets").then((answer) => answer.items).catch((error) => {
    presetList = null;
    throw error;
  });
  return presetList;
}

// The choice the stored settings are; before any, the sender's provider (by its SMTP preset or server).
function initialChoice(status, sender, presets) {
  if (status.host) {
    if ((status.port ?? IMAP_PORT) !== IMAP_PORT) return CUSTOM;
    const found = presets.find((p) => p.key === sender.preset && p.imap_host === status.host)
      || presets.find((p) => p.imap_host === status.host);
    return found ? found.key : CUSTOM;
  }
  const provider = presets.find((p) => p.key === sender.preset) || presets.find((p) => p.host === sender.host);
  return provider ? provider.key : CUSTOM;
}

// What the form would send for the stored settings (null: nothing stored).
function storedBody(status) {
  if (!status.host) return null;
  const body = { imap_host: status.host, imap_port: status.port ?? IMAP_PORT, imap_username: status.username ?? null,
    imap_password: null, imap_move_bounces: Boolean(status.move_bounces) };
  if (status.own_password) delete body.imap_password; // a password of its own, kept as it is
  return body;
}

// The PUT body for what the form says, or { problem, field } when it cannot be sent as it is.
// `stored` is the server the saved settings name: a saved IMAP password goes to no other.
function readForm(form, presets, ownPassword = false, stored = null) {
  const fields = form.elements;
  const choice = fields.choice.value;
  if (choice === OFF) return { body: { imap_enabled: false, imap_host: null } };
  let host;
  let port = IMAP_PORT;
  if (choice === CUSTOM) {
    host = fields.host.value.trim();
    if (!host) return { problem: t("imap.needhost"), field: fields.host };
    if (fields.port.value !== "" || fields.port.validity.badInput) {
      port = Number(fields.port.value);
      if (!Number.isInteger(port) || port < 1 || port > 65535) return { problem: t("imap.badport"), field: fields.port };
    }
  } else {
    host = presets.find((p) => p.key === choice).imap_host;
  }
  const same = fields.same.checked;
  if (!same && !fields.password.value && !ownPassword) return { problem: t("imap.needpassword"), field: fields.password };
  const moved = !stored || stored.host !== host || stored.port !== port;
  if (!same && !fields.password.value && moved) return { problem: t("imap.passwordagain"), field: fields.password };
  const body = { imap_host: host, imap_port: port, imap_username: fields.username.value.trim() || null,
    imap_password: same ? null : fields.password.value, imap_move_bounces: fields.move.checked };
  if (!same && !fields.password.value) delete body.imap_password; // keep the password stored before
  return { body };
}

// The API keeps a problem in both languages, "русский / English": the page's half. The separator
// is the middle " / " (each half holds the same server details, so any other comes in pairs).
function inPageLanguage(text) {
  const separators = [...text.matchAll(/ \/ /g)].map((match) => match.index);
  if (separators.length % 2 === 0) return text;
  const middle = separators[(separators.length - 1) / 2];
  return currentLanguage() === "ru" ? text.slice(0, middle) : text.slice(middle + 3);
}

// An API error in words; a few of the API's field errors name the JSON field, these say it plainly.
function messageOf(error) {
  if (!(error instanceof ApiError)) return t("imap.offline");
  if (error.code === "invalid_host" && error.field === "imap_host") return t("imap.badhost");
  if (error.code === "invalid_port" && error.field === "imap_port") return t("imap.badport");
  return error.message || t("common.error");
}

function drawStatus(panel, status) {
  const lang = currentLanguage();
  const rate = new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 1 }).format(status.bounce_rate_30d || 0);
  const verified = status.verified ? t("imap.passed") : status.problem ? t("imap.failed") : t("imap.notyet");
  render(panel.querySelector("#imap-warning"), status.bounce_warning ? html`<div class="callout">
      <h3>${t("imap.warningtitle")}</h3><p>${t("imap.warning", { rate })}</p>
      <p><a href="#/suppressions">${t("imap.suppressions")}</a></p></div>` : html``);
  render(panel.querySelector("#imap-status"), html`<h3 id="imap-status-title">${t("imap.status")}</h3>
    <dl class="summary">
      <dt>${t("imap.reading")}</dt><dd id="imap-reading">${status.host ? t("imap.on", { server: `${status.host}:${status.port ?? IMAP_PORT}` }) : t("imap.notset")}</dd>
      ${status.host && html`<dt>${t("imap.verified")}</dt><dd id="imap-verified">${verified}</dd>
      <dt>${t("imap.lastread")}</dt><dd id="imap-checked">${status.checked_at ? new Date(status.checked_at).toLocaleString(lang) : t("imap.never")}</dd>`}
      ${status.problem && html`<dt>${t("imap.problem")}</dt><dd id="imap-problem" class="error">${inPageLanguage(status.problem)}</dd>`}
      <dt>${t("imap.sent")}</dt><dd id="imap-sent">${status.sent_30d}</dd>
      <dt>${t("imap.bounced")}</dt><dd id="imap-bounced">${status.bounced_30d}</dd>
      <dt>${t("imap.rate")}</dt><dd id="imap-rate">${rate}</dd>
    </dl>`);
}

function drawForm(panel, sender, presets, status, close) {
  const choice = initialChoice(status, sender, presets);
  const custom = choice === CUSTOM;
  const option = (value, label) => html`<option value="${value}" ${value === choice ? "selected" : ""}>${label}</option>`;
  render(panel, html`<h2 id="imap-title">${t("imap.title", { email: sender.from_email })}</h2>
    <p>${t("imap.about")}</p>
    <div id="imap-warning"></div>
    <form id="imap-form" novalidate>
      <label>${t("imap.provider")}<select name="choice" id="imap-choice">
        ${presets.map((p) => option(p.key, `${providerTitle(p)} (${p.imap_host})`))}
        ${option(CUSTOM, t("imap.custom"))}${option(OFF, t("imap.off"))}</select></label>
      <div class="grid" id="imap-server" ${custom ? "" : "hidden"}>
        <label>${t("imap.host")}<input name="host" id="imap-host" value="${custom ? status.host ?? "" : ""}"
          placeholder="imap.example.com" autocomplete="off" autocapitalize="none" spellcheck="false"></label>
        <label>${t("imap.port")}<input name="port" id="imap-port" class="narrow" type="number" min="1" max="65535"
          inputmode="numeric" value="${custom ? status.port ?? IMAP_PORT : IMAP_PORT}"></label>
      </div>
      <div id="imap-account">
        <label>${t("imap.username")}<input name="username" id="imap-username" value="${status.username ?? ""}"
          placeholder="${sender.username}" autocomplete="off" autocapitalize="none" spellcheck="false"
          aria-describedby="imap-username-hint"></label>
        <p class="hint" id="imap-username-hint">${t("imap.usernamehint", { login: sender.username })}</p>
        <label class="check"><input type="checkbox" name="same" id="imap-same" ${status.own_password ? "" : "checked"}>${t("imap.same")}</label>
        <label id="imap-password-row" ${status.own_password ? "" : "hidden"}>${t("imap.password")}<input name="password" id="imap-password"
          type="password" autocomplete="new-password" placeholder="${status.own_password ? t("sender.keeppassword") : ""}"></label>
        <label class="check"><input type="checkbox" name="move" id="imap-move" ${status.move_bounces ? "checked" : ""}>${t("imap.move")}</label>
      </div>
      <div class="row">
        <button type="submit" class="primary">${t("common.save")}</button>
        <button type="button" id="imap-check">${t("imap.check")}</button>
        <button type="button" id="imap-close">${t("imap.close")}</button>
      </div>
    </form>
    <div id="imap-result" aria-live="polite"></div>
    <section id="imap-status" aria-labelledby="imap-status-title"></section>`);
  drawStatus(panel, status);

  const form = panel.querySelector("#imap-form");
  const fields = form.elements;
  const result = panel.querySelector("#imap-result");
  const byApiField = { imap_host: fields.host, imap_port: fields.port, imap_username: fields.username,
    imap_password: fields.password, imap_move_bounces: fields.move };
  // What is stored now, as the form sends it: "Check" on a form that says something else saves it first.
  let saved = JSON.stringify(storedBody(status));
  let ownPassword = Boolean(status.own_password); // a separate IMAP password is stored
  const serverOf = (body) => (body?.imap_host ? { host: body.imap_host, port: body.imap_port } : null);
  let storedServer = serverOf(storedBody(status));
  let busy = false;

  const sync = () => {
    panel.querySelector("#imap-server").hidden = fields.choice.value !== CUSTOM;
    panel.querySelector("#imap-account").hidden = fields.choice.value === OFF;
    panel.querySelector("#imap-password-row").hidden = fields.same.checked;
  };
  fields.choice.addEventListener("change", sync);
  fields.same.addEventListener("change", sync);

  const clearInvalid = () => {
    form.querySelectorAll("[aria-invalid]").forEach((field) => {
      field.removeAttribute("aria-invalid");
      const rest = (field.getAttribute("aria-describedby") || "").split(" ").filter((id) => id && id !== "imap-error");
      if (rest.length) field.setAttribute("aria-describedby", rest.join(" "));
      else field.removeAttribute("aria-describedby");
    });
  };
  const say = (message) => {
    clearInvalid();
    render(result, html`<p class="notice">${message}</p>`);
  };
  // A problem goes next to the form with focus on it; the field it concerns is marked.
  const showProblem = (message, field) => {
    clearInvalid();
    if (field && !field.closest("[hidden]")) {
      field.setAttribute("aria-invalid", "true");
      field.setAttribute("aria-describedby", `${field.getAttribute("aria-describedby") || ""} imap-error`.trim());
    }
    render(result, html`<p class="error" role="alert" id="imap-error" tabindex="-1">${message}</p>`);
    result.querySelector("#imap-error").focus();
  };
  const once = (work) => async () => {
    if (busy) return;
    busy = true;
    form.setAttribute("aria-busy", "true");
    try {
      await work();
    } finally {
      busy = false;
      form.removeAttribute("aria-busy");
    }
  };

  const save = async (read) => {
    render(result, html`<p>${read.body.imap_host ? t("imap.saving") : t("common.loading")}</p>`);
    try {
      const answer = await api("PUT", `/v1/senders/${sender.id}/imap`, read.body);
      saved = JSON.stringify(read.body.imap_host ? read.body : null);
      storedServer = serverOf(read.body);
      ownPassword = Boolean(answer.imap?.own_password);
      drawStatus(panel, answer.imap);
      say(answer.verified ? `${t("imap.saved")} ${t("imap.ok")}` : t("imap.savedoff"));
    } catch (error) {
      if (error instanceof ApiError && error.status === 422 && error.body?.imap) {  // stored, but it does not work
        saved = JSON.stringify(read.body);
        storedServer = serverOf(read.body);
        ownPassword = Boolean(error.body.imap.own_password);
        drawStatus(panel, error.body.imap);
        return showProblem(t("imap.savedfailed", { problem: messageOf(error) }));
      }
      if (error instanceof ApiError && error.code === "imap_password_required") {
        fields.same.checked = false; // the SMTP password does not go to this server either: ask for one
        sync();
      }
      showProblem(messageOf(error), byApiField[error.field]);
    }
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    once(async () => {
      const read = readForm(form, presets, ownPassword, storedServer);
      if (read.problem) return showProblem(read.problem, read.field);
      await save(read);
    })();
  });

  panel.querySelector("#imap-check").addEventListener("click", once(async () => {
    if (fields.choice.value === OFF) return say(t("imap.offcheck"));
    const read = readForm(form, presets, ownPassword, storedServer);
    if (read.problem) return showProblem(read.problem, read.field);
    if (JSON.stringify(read.body) !== saved) return save(read);
    render(result, html`<p>${t("imap.checking")}</p>`);
    try {
      const answer = await api("POST", `/v1/senders/${sender.id}/imap/verify`);
      drawStatus(panel, answer.imap);
      say(t("imap.ok"));
    } catch (error) {
      if (error instanceof ApiError && error.body?.imap) drawStatus(panel, error.body.imap);
      showProblem(messageOf(error));
    }
  }));

  panel.querySelector("#imap-close").addEventListener("click", close);
  fields.choice.focus();
}

// The panel under the senders table. open(sender, trigger) shows that sender's form (the same
// trigger again closes it); closing hides it and gives focus back to the trigger. Escape closes.
function imapPanel(panel) {
  let current = null;
  let generation = 0;

  const close = () => {
    generation += 1;
    if (!current) return;
    const { trigger } = current;
    current = null;
    panel.hidden = true;
    render(panel, html``);
    trigger.setAttribute("aria-expanded", "false");
    trigger.focus();
  };

  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && current) {
      event.preventDefault();
      close();
    }
  });

  const open = async (sender, trigger) => {
    if (current && current.trigger === trigger) return close();
    if (current) current.trigger.setAttribute("aria-expanded", "false");
    current = { sender, trigger };
    const mine = ++generation;
    trigger.setAttribute("aria-expanded", "true");
    panel.hidden = false;
    render(panel, html`<p>${t("common.loading")}</p>`);
    try {
      const [presets, status] = await Promise.all([loadPresets(), api("GET", `/v1/senders/${sender.id}/imap`)]);
      if (mine === generation) drawForm(panel, sender, presets, status, close);
    } catch (error) {
      if (mine !== generation) return;
      render(panel, html`<p class="error" role="alert" id="imap-error" tabindex="-1">${messageOf(error)}</p>
        <button type="button" id="imap-close">${t("imap.close")}</button>`);
      panel.querySelector("#imap-close").addEventListener("click", close);
      panel.querySelector("#imap-error").focus();
    }
  };

  return { open, close };
}

// The campaign wizard: contacts → sender → message → review. Every step saves the draft.

import { api, OfflineError, uploadToStorage } from "../api.js";
import { clearFieldProblem, html, main, render, showError, showFieldProblems } from "../dom.js";
import { dateTime, zoneName } from "../dates.js";
import { currentLanguage, inOwnLanguage, number, t } from "../i18n.js";
import { planText } from "../plan.js";
import { hasContent } from "../blank.js";
import { editorDialogs, insertImage, insertLink } from "../link_dialog.js";
import { checkState, editTitle, passwordRule, senderChecks } from "../sender_form.js";

const ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "cp1251", "koi8-r", "cp1252", "iso-8859-1"];
// What people know the encodings as (the codec name stays in brackets for the technical reader).
const encodingName = (code) => `${t(`encoding.${code}`)} (${code})`;
const DELIMITERS = [",", ";", "\t", "|"];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const AUTOSAVE_MS = 1200;
// The message step's last save in flight: whatever step opens next waits for it, so the review
// never shows a subject from before the last keystrokes.
let pendingSave = Promise.resolve();
let flushDraft = () => {}; // the message step's "save now if anything changed"
// An upload that made the draft goes on at the draft's own address: there, focus goes to the report.
let reportToFocus = false;
const megabytes = (bytes) => number(Math.round((bytes / 1048576) * 10) / 10);

// Puts focus on a message just shown (an error, a warning), so the keyboard is where to read on.
function focusOn(element) {
  if (!element) return;
  element.tabIndex = -1;
  element.focus();
}

// "New campaign" creates nothing until the person does something (uploads a file or goes on):
// clicking it and leaving leaves no empty draft behind.
const UNSAVED = { id: null, status: "draft", name: "", subject: "", html_body: "", text_body: null, upload_id: null,
  sender_id: null, status_reason: null, plan: null };

async function ensureDraft(campaign) {
  if (campaign.id) return false;
  const draft = await api("POST", "/v1/campaigns", { name: "" }, { "Idempotency-Key": crypto.randomUUID() });
  campaign.id = draft.id;
  return true;
}

export async function wizard(campaignId, step) {
  flushDraft();
  flushDraft = () => {};
  await pendingSave.catch(() => {});
  const campaign = campaignId ? await api("GET", `/v1/campaigns/${campaignId}`) : { ...UNSAVED };
  if (!campaignId) step = 1;
  if (campaign.status !== "draft") {
    location.hash = `#/campaign/${campaignId}`;
    return;
  }
  render(main(), html`<h1>${t("wizard.title")}</h1>
    <nav class="wizard-steps" aria-label="${t("wizard.title")}">
      ${[1, 2, 3, 4].map((n) => campaignId || n === 1
        ? html`<a href="${campaignId ? `#/wizard/${campaignId}/${n}` : "#/new"}" ${n === step && html`aria-current="step"`}>${n}. ${t(`wizard.step${n}`)}</a>`
        : html`<span class="step-later">${n}. ${t(`wizard.step${n}`)}</span>`)}
    </nav>${campaign.status_reason && html`<p class="warning" id="draft-reason">${inOwnLanguage(campaign.status_reason)}</p>`}<section id="step" class="card"></section>`);
  const section = document.getElementById("step");
  const steps = { 1: contactsStep, 2: senderStep, 3: messageStep, 4: reviewStep };
  if (!(step in steps)) {
    location.hash = `#/wizard/${campaignId}/1`;
    return;
  }
  await steps[step](section, campaign);
  // A keyboard user starts the new step at its heading, not 13 Tabs back at the top of the page.
  const heading = section.querySelector("h2");
  if (heading && !section.contains(document.activeElement)) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

// `readyToGo`: whether the step may be gone on from (it says at its fields why not); Back and the
// step links need nothing of it.
function nextButtons(campaign, step, beforeLeave = async () => {}, readyToGo = () => true) {
  const back = step > 1 && html`<a class="button" href="#/wizard/${campaign.id}/${step - 1}" id="back">${t("common.back")}</a>`;
  return {
    fragment: html`<div id="nav-error"></div><div class="row wizard-nav">${back}<button type="button" class="primary" id="next">${t("common.next")}</button></div>`,
    bind(root) {
      // A step that cannot be saved (a template error, a lost connection) keeps the user here and
      // says why, with focus on the reason; it never fails silently.
      const leave = async (target, onward = false) => {
        const problem = root.querySelector("#nav-error");
        try {
          await beforeLeave();
        } catch (error) {
          showError(problem, error);
          const shown = problem.querySelector("p");
          shown.tabIndex = -1;
          shown.focus();
          return;
        }
        render(problem, html``);
        if (onward && !readyToGo()) return;
        location.hash = target;
      };
      root.querySelector("#next").addEventListener("click", async () => {
        try {
          await ensureDraft(campaign);
        } catch (error) {
          showError(root.querySelector("#nav-error"), error);
          return;
        }
        leave(`#/wizard/${campaign.id}/${step + 1}`, true);
      });
      root.querySelector("#back")?.addEventListener("click", (event) => {
        event.preventDefault();
        leave(`#/wizard/${campaign.id}/${step - 1}`);
      });
    },
  };
}

// Step 1 — contacts

async function contactsStep(section, campaign) {
  const upload = campaign.upload_id ? await api("GET", `/v1/uploads/${campaign.upload_id}`) : null;
  const nav = nextButtons(campaign, 1, undefined, () => hasAddresses(section));
  shownUpload = upload;
  render(section, html`<h2>${t("wizard.step1")}</h2>
    <div class="dropzone" id="dropzone">
      <p>${t("contacts.drop")}</p>
      <label class="button file-button">${t("contacts.choose")}<input type="file" id="file" accept=".csv,.txt,text/csv" class="visually-hidden"></label>
      <progress id="progress" max="1" value="0" hidden></progress><p id="upload-status" aria-live="polite"></p>
    </div>
    <div id="report">${upload && reportHtml(upload, noteFor(upload, recalled(upload)))}</div>${nav.fragment}`);
  nav.bind(section);
  bindReport(section, campaign, upload, recalled(upload)?.good ?? settingsOf(upload));
  if (reportToFocus) focusOn(section.querySelector("#report h3"));
  reportToFocus = false;
  const input = section.querySelector("#file");
  input.addEventListener("change", () => input.files[0] && uploadFile(section, campaign, input.files[0]));
  const zone = section.querySelector("#dropzone");
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files[0]) uploadFile(section, campaign, event.dataTransfer.files[0]);
  });
}

async function uploadFile(section, campaign, file) {
  const status = section.querySelector("#upload-status");
  const progress = section.querySelector("#progress");
  const report = section.querySelector("#report");
  report.replaceChildren();
  progress.hidden = false;
  progress.value = 0;
  status.textContent = t("contacts.uploading");
  try {
    const { upload, post, max_bytes: maxBytes } = await api("POST", "/v1/uploads", { filename: file.name });
    if (maxBytes && file.size > maxBytes) {
      throw new Error(t("contacts.toolarge", { size: megabytes(file.size), limit: megabytes(maxBytes) }));
    }
    await uploadToStorage(post, file, (share) => { progress.value = share; });
    status.textContent = t("contacts.checking");
    let checked = await api("POST", `/v1/uploads/${upload.id}/complete`);
    while (checked.status === "inspecting") {
      // Waiting for a file reader says behind what; reading says how far it got.
      status.textContent = checked.waiting_reason ? inOwnLanguage(checked.waiting_reason)
        : t("contacts.progress", { n: number(checked.rows_read) });
      await sleep(800);
      checked = await api("GET", `/v1/uploads/${upload.id}`);
    }
    if (checked.status === "failed") throw new Error(inOwnLanguage(checked.error.detail));
    const created = await ensureDraft(campaign);
    await api("PATCH", `/v1/campaigns/${campaign.id}`, { upload_id: checked.id });
    if (created) {
      reportToFocus = true;
      location.hash = `#/wizard/${campaign.id}/1`; // the draft exists now: its own address, its step links
      return;
    }
    campaign.upload_id = checked.id;
    status.textContent = "";
    render(report, reportHtml(checked));
    bindReport(section, campaign, checked);
    focusOn(report.querySelector("h3")); // what was found is what to read (and correct) next
  } catch (error) {
    status.textContent = "";
    showError(report, error);
    focusOn(report.querySelector(".error"));
  } finally {
    progress.hidden = true;
  }
}

// The upload whose report the contacts step shows (reportHtml draws each one): «Далее» asks it.
let shownUpload = null;

// A file read to no valid address has nobody to send to: «Далее» stops at the address column and
// says why (the walk went on after «Всё равно применить» without a word).
function hasAddresses(section) {
  const r = shownUpload?.report;
  if (!r || r.valid > 0) return true;
  const column = section.querySelector("#dialect")?.email_column;
  if (column) return showFieldProblems([[column, "contacts-problem", t("contacts.needvalid")]]);
  showError(section.querySelector("#nav-error"), new Error(t("contacts.needvalid")));
  focusOn(section.querySelector("#nav-error .error"));
  return false;
}

// A reading applied with «Всё равно применить» (far fewer addresses, or no address column) keeps
// its note and its way back over a reload — the walk reloaded after one and found 0 addresses and
// nothing to go back with. Kept in this browser while that reading is still the upload's.
const appliedKey = (uploadId) => `sendpy.applied.${uploadId}`;

function remember(upload, applied) {
  if (applied) localStorage.setItem(appliedKey(upload.id), JSON.stringify({ ...applied, dialect: upload.dialect }));
  else if (upload) localStorage.removeItem(appliedKey(upload.id));
}

function recalled(upload) {
  if (!upload?.dialect) return null;
  const kept = JSON.parse(localStorage.getItem(appliedKey(upload.id)) || "null");
  const same = kept?.dialect && Object.keys(upload.dialect).every((k) => kept.dialect[k] === upload.dialect[k]);
  return same ? kept : null;
}

// What the report says above itself: an applied reading's note with the way back, or — in any
// browser — that these settings give no address at all, with a new detection to start over from.
function noteFor(upload, applied) {
  if (applied) {
    return { good: applied.good, text: applied.nocolumn ? t("contacts.nocolumn", { delimiter: t(`delim.${applied.nocolumn}`) })
      : t("contacts.fewer", { valid: number(applied.valid), before: number(applied.before) }) };
  }
  const r = upload?.report;
  return r && r.rows > 0 && r.valid === 0 ? { text: t("contacts.novalid"), redetect: true } : null;
}

// `note`: a correction that found no address column: why, and the way back to the earlier reading.
function reportHtml(upload, note = null) {
  const d = upload.dialect;
  const r = upload.report;
  shownUpload = upload;
  // A column without a header cell the server names "Column 1…" (in English): the reader's words here.
  const columns = (upload.columns || []).map((c, i) => (c.label === `Column ${i + 1}`
    ? { ...c, label: t("contacts.column", { n: i + 1 }) } : c));
  const option = (value, label, selected) => html`<option value="${value}" ${selected ? "selected" : ""}>${label}</option>`;
  const count = (n) => number(n ?? 0);
  return html`<h3>${t("contacts.detected")}: ${upload.filename}</h3>
    <form id="dialect" class="grid">
      <label>${t("contacts.encoding")}<select name="encoding">${ENCODINGS.map((e) => option(e, encodingName(e), e === d.encoding))}</select></label>
      <label>${t("contacts.delimiter")}<select name="delimiter">${DELIMITERS.map((x) => option(x, t(`delim.${x}`), x === d.delimiter))}</select></label>
      <label>${t("contacts.emailcol")}<select name="email_column">${columns.map((c, i) => option(i, c.label, i === d.email_column))}</select></label>
      <label class="check"><input type="checkbox" name="has_header" ${d.has_header ? "checked" : ""}> ${t("contacts.header")}</label>
      <button type="submit">${t("contacts.apply")}</button>
    </form><span class="error field-error" id="contacts-problem"></span><div id="dialect-error" aria-live="polite"></div>
    ${note && html`<div class="callout" id="dialect-warning"><p>${note.text}</p>${note.refused
      ? html`<button type="button" class="apply-anyway">${t("contacts.applyanyway")}</button>`
      : note.redetect ? html`<button type="button" class="redetect">${t("contacts.redetect")}</button>` : revertButton(note.good)}</div>`}
    ${garbled(upload.preview) && html`<p class="warning" id="encoding-warning">${t("contacts.garbled", {
      encoding: encodingName(d.encoding), sample: garbled(upload.preview) })}</p>`}
    ${r && html`<dl class="stats">
      <div><dt>${t("contacts.rows")}</dt><dd id="stat-rows">${count(r.rows)}</dd></div>
      <div><dt>${t("contacts.valid")}</dt><dd id="stat-valid">${count(r.valid)}</dd></div>
      <div><dt>${t("contacts.empty")}</dt><dd id="stat-empty">${count(r.empty)}</dd></div>
      <div><dt>${t("contacts.invalid")}</dt><dd id="stat-invalid">${count(r.invalid)}</dd></div>
      <div><dt>${t("contacts.duplicates")}</dt><dd>${count(r.duplicates)}</dd></div>
      <div><dt>${t("contacts.suppressed")}</dt><dd>${count(r.suppressed)}</dd></div></dl>
      ${r.invalid_examples.length > 0 && html`<h4>${t("contacts.invalidrows")}</h4><ul class="problems">${r.invalid_examples.map((x) => html`<li>${t("contacts.row")} ${x.row}: <code>${x.value}</code> — ${inOwnLanguage(x.reason)}</li>`)}</ul>
        <p>${(r.empty ?? 0) + r.invalid > r.invalid_examples.length && html`${t("contacts.more", { n: count((r.empty ?? 0) + r.invalid - r.invalid_examples.length) })} `}
        <a href="/v1/uploads/${upload.id}/problems.csv?lang=${currentLanguage()}" download id="problems-link">${downloadText(r)}</a></p>`}`}
    <h4>${t("contacts.preview")}</h4>
    <div class="scroll" tabindex="0" role="region" aria-label="${t("contacts.previewtable")}"><table id="preview"><thead><tr>${columns.map((c) => html`<th>${c.label}</th>`)}</tr></thead>
    <tbody>${(upload.preview || []).map((row) => html`<tr>${row.map((cell) => html`<td>${cell}</td>`)}</tr>`)}</tbody></table></div>`;
}

// The download holds the repeated addresses too: said, so that the rows listed, the «… и ещё» and
// the download's count add up (20 + 160 ≠ 245 when 65 repeats were only in the file).
function downloadText(r) {
  const problems = (r.empty ?? 0) + r.invalid;
  const all = number(problems + (r.duplicates ?? 0));
  return r.duplicates ? t("contacts.downloadwith", { n: all, problems: number(problems), duplicates: number(r.duplicates) })
    : t("contacts.download", { n: all });
}

// Text read in the wrong encoding is mostly odd words: the case flipping inside a word (cp1251 read
// as KOI8-R: «Москва» → «лНЯЙБЮ», «щК.»), accented Latin letters for Cyrillic ones («Èâàíîâà»),
// Cyrillic mixed with signs («Ð¼Ð¾»). Returns an example of them when they are most of the words.
function garbled(rows) {
  const words = (rows || []).flat().join(" ").split(/[\s.,;:!?"'()«»\-–—@_/|]+/u).filter((w) => /[^\x00-\x7f]/.test(w));
  const odd = words.filter((w) => /\p{Ll}\p{Lu}/u.test(w) || /[^\p{L}\p{M}\d]/u.test(w)
    || (w.match(/[\u00c0-\u024f]/gu) || []).length * 2 > w.length);
  return words.length >= 3 && odd.length * 2 > words.length ? odd.slice(0, 3).join(", ") : "";
}

const revertButton = (good) => html`<button type="button" class="revert">${t("contacts.revert", {
  delimiter: t(`delim.${good.delimiter}`), encoding: encodingName(good.encoding), column: good.label ?? "" })}</button>`;

// The settings an upload was read with, and the name of its address column then: the way back names
// the column it goes back to (the columns on screen are those of the reading being undone).
function settingsOf(upload) {
  if (!upload?.dialect) return upload?.dialect;
  const at = upload.dialect.email_column;
  const column = (upload.columns || [])[at];
  return { ...upload.dialect, label: column && (column.label === `Column ${at + 1}` ? t("contacts.column", { n: at + 1 }) : column.label) };
}

// A reading's settings as the API takes them (without the column's name kept for the way back).
const asBody = ({ label, ...settings }) => settings;

// Reads the file again with corrected settings; a big file is read by a worker, waited for here.
async function reread(uploadId, body, problem) {
  let fixed = await api("PATCH", `/v1/uploads/${uploadId}`, body);
  while (fixed.status === "inspecting") {
    problem.textContent = fixed.waiting_reason ? inOwnLanguage(fixed.waiting_reason) : "";
    await sleep(800);
    fixed = await api("GET", `/v1/uploads/${uploadId}`);
  }
  problem.textContent = "";
  if (fixed.status === "failed") throw new Error(inOwnLanguage(fixed.error.detail));
  return fixed;
}

// `good`: the last settings that found an address column. A separator or encoding that finds none
// must not trap the person: the columns it gives are shown to pick from, and a button goes back.
function bindReport(section, campaign, upload, good = settingsOf(upload)) {
  const form = section.querySelector("#dialect");
  if (!form || !upload) return;
  const report = section.querySelector("#report");
  const problem = section.querySelector("#dialect-error");
  // `applied`: applied although it finds far fewer addresses: {good, valid, before} or {good, nocolumn}.
  const show = (fixed, applied = null) => {
    remember(fixed, applied);
    const note = noteFor(fixed, applied);
    render(report, reportHtml(fixed, note));
    bindReport(section, campaign, fixed, applied ? good : settingsOf(fixed));
    focusOn(note ? section.querySelector("#dialect-warning p")
      : section.querySelector("#encoding-warning") || section.querySelector("#report h3"));
  };
  const correct = async (body, columnReset = false) => {
    let tried = body;
    try {
      const fixed = await reread(upload.id, body, problem);
      // Applied although it finds far fewer addresses (the person said so): the way back stays offered.
      const fewer = body.accept_fewer && (fixed.report?.valid ?? 1) * 2 < (upload.report?.valid ?? 0);
      show(fixed, fewer ? (body.nocolumn ? { good, nocolumn: body.delimiter }
        : { good, valid: fixed.report.valid, before: upload.report.valid }) : null);
      if (columnReset) { // the column picked went with the separator: why, where the column is
        const select = section.querySelector("#dialect").email_column;
        section.querySelector("#dialect-error").textContent = t("contacts.columnreset");
        select.setAttribute("aria-describedby", "dialect-error");
        select.focus();
      }
    } catch (error) {
      let failure = error;
      if (error.code === "no_email_column" && body.email_column === undefined && body.delimiter) {
        tried = { ...body, email_column: 0, nocolumn: true }; // the first of the columns it gives, to pick from
        try {
          const fixed = await reread(upload.id, { ...tried, nocolumn: undefined }, problem);
          return show(fixed, { good, nocolumn: body.delimiter });
        } catch (again) {
          failure = again;
        }
      }
      // The server keeps a file read well before as it was when a correction does not read, or
      // reads far fewer addresses: the form shows those settings again, and the problem is said
      // with what is still in use.
      const kept = await api("GET", `/v1/uploads/${upload.id}`).catch(() => null);
      if (kept?.status === "ready" && kept.dialect && failure.code === "correction_loses_addresses") {
        const still = t("contacts.kept", { delimiter: t(`delim.${kept.dialect.delimiter}`), encoding: encodingName(kept.dialect.encoding) });
        render(report, reportHtml(kept, { refused: true,
          text: tried.nocolumn ? `${t("contacts.nocolumnrefused", { delimiter: t(`delim.${body.delimiter}`) })} ${still}` : failure.message }));
        bindReport(section, campaign, kept);
        section.querySelector("#dialect-warning .apply-anyway").addEventListener("click", () => correct({ ...tried, accept_fewer: true }));
        focusOn(section.querySelector("#dialect-warning p"));
        return;
      }
      if (kept?.status === "ready" && kept.dialect) {
        render(report, reportHtml(kept));
        bindReport(section, campaign, kept);
        const shown = section.querySelector("#dialect-error");
        render(shown, html`<p class="error" role="alert">${failure.message || t("common.error")} ${t("contacts.kept", {
          delimiter: t(`delim.${kept.dialect.delimiter}`), encoding: encodingName(kept.dialect.encoding) })}</p>`);
        focusOn(shown.querySelector(".error"));
        return;
      }
      // The file is not read with these settings: say why, and offer the ones that worked.
      render(problem, html`<p class="error" role="alert">${failure.message || t("common.error")}</p>${revertButton(good)}`);
      problem.querySelector(".revert").addEventListener("click", () => correct(asBody(good)));
      focusOn(problem.querySelector(".error"));
    }
  };
  section.querySelector("#dialect-warning .revert")?.addEventListener("click", () => correct(asBody(good)));
  // No overrides at all: the file's settings detected afresh, as when it was uploaded.
  section.querySelector("#dialect-warning .redetect")?.addEventListener("click", () => correct({}));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const d = upload.dialect;
    const body = { encoding: form.encoding.value, delimiter: form.delimiter.value, has_header: form.has_header.checked };
    const column = Number(form.email_column.value);
    const picked = form.email_column.value !== "" && column !== d.email_column;
    // Another encoding gives the same columns, their names read anew: a column picked is kept by its
    // place. Another separator gives other columns: the address column is found again, and that is said.
    if (body.delimiter === d.delimiter && (body.encoding === d.encoding || picked)) body.email_column = column;
    correct(body, picked && body.delimiter !== d.delimiter);
  });
}

// Step 2 — sender. Adding and fixing a mailbox happen in one form: once a sender exists (even one
// that failed its check), "Verify" saves the corrections to it, so retrying never makes duplicates.

const GUIDE_FOR = { gmail: "gmail", google_workspace: "gmail", yandex: "yandex", mailru: "mailru", outlook: "outlook", office365: "outlook" };

function senderLine(s, chosen) {
  return html`<div class="sender-choice"><label class="check"><input type="radio" name="sender" value="${s.id}" ${s.id === chosen ? "checked" : ""}>
      ${s.from_name} &lt;${s.from_email}&gt; — ${s.host}:${s.port} (${t(`security.${s.security}`)}) ${s.verified ? "✓" : `(${t(checkState(s))})`}</label>
    <button type="button" data-edit="${s.id}" aria-label="${t("sender.edit")}: ${s.from_email}">${t("sender.edit")}</button>
    ${!s.verified && html`<button type="button" data-check="${s.id}" aria-label="${t("sender.verify")}: ${s.from_email}">${t("sender.verify")}</button>`}</div>`;
}

// A provider as the reader knows it («Яндекс Почта»); the API's title otherwise.
function presetTitle(preset) {
  const key = `preset.${preset.key}`;
  const text = t(key);
  return text === key ? preset.title : text;
}

function presetLimits(preset) {
  if (!preset) return "";
  return t("sender.presetlimits", { title: presetTitle(preset), perday: number(preset.per_day), perminute: number(preset.per_minute) });
}

async function senderStep(section, campaign) {
  const [{ items: senders }, { items: presets }] = await Promise.all([api("GET", "/v1/senders"), api("GET", "/v1/presets")]);
  const nav = nextButtons(campaign, 2);
  let editing = null; // the sender the form corrects; null while adding a new one
  render(section, html`<h2>${t("wizard.step2")}</h2>
    <fieldset id="sender-list"><legend>${t("sender.pick")}</legend></fieldset>
    <details id="sender-details" ${senders.length ? "" : "open"}><summary id="sender-form-title">${t("sender.add")}</summary>
      <form id="new-sender" class="grid" novalidate>
        <label>${t("sender.provider")}<select name="preset"><option value="">${t("sender.custom")}</option>
          ${presets.map((p) => html`<option value="${p.key}">${presetTitle(p)}</option>`)}</select></label>
        <p id="preset-limits" class="hint" aria-live="polite"></p>
        <div><label>${t("sender.from")}<input name="from_email" type="email" required autocomplete="email"></label><span class="error field-error" id="sender-problem-from_email"></span></div>
        <label>${t("sender.name")}<input name="from_name" maxlength="200"></label>
        <label>${t("sender.host")}<input name="host"></label>
        <div><label>${t("sender.port")}<input name="port" type="number" min="1" max="65535"></label><span class="error field-error" id="sender-problem-port"></span></div>
        <label>${t("sender.security")}<select name="security"><option value="tls">SSL/TLS (465)</option>
          <option value="starttls">STARTTLS (587)</option><option value="none">—</option></select></label>
        <label>${t("sender.username")}<input name="username" autocomplete="off"></label>
        <div><label>${t("sender.password")}<input name="password" type="password" required autocomplete="new-password" aria-describedby="sender-password-hint"></label>
          <p class="hint" id="sender-password-hint"></p><span class="error field-error" id="sender-problem-password"></span></div>
        <p><a id="guide-link" href="#/guides/corporate" target="_blank">${t("sender.guide")}</a></p>
        <div class="row"><button type="submit" class="primary">${t("sender.verify")}</button>
          <button type="button" id="new-instead" hidden>${t("sender.addanother")}</button></div>
      </form></details>
    <div id="verify-result" aria-live="polite" tabindex="-1"></div>${nav.fragment}`);
  nav.bind(section);
  const result = section.querySelector("#verify-result");
  const form = section.querySelector("#new-sender");
  const list = section.querySelector("#sender-list");
  const title = section.querySelector("#sender-form-title");
  const password = passwordRule(form, section.querySelector("#sender-password-hint"), "sender-problem-password"); // the rule of a saved sender's password

  const showPreset = () => {
    const preset = presets.find((p) => p.key === form.preset.value);
    section.querySelector("#preset-limits").textContent = presetLimits(preset);
    section.querySelector("#guide-link").href = `#/guides/${GUIDE_FOR[form.preset.value] || "corporate"}`;
    return preset;
  };
  const edit = (sender) => {
    editing = sender;
    title.textContent = sender ? editTitle(sender) : t("sender.add");
    section.querySelector("#new-instead").hidden = !sender;
    for (const name of ["from_email", "from_name", "host", "port", "username"]) form[name].value = sender ? sender[name] ?? "" : "";
    form.preset.value = sender?.preset || "";
    form.security.value = sender?.security || "tls";
    form.password.value = "";
    password.edit(sender);
    for (const [input, id] of senderChecks(form, password, "sender-problem-")) clearFieldProblem(input, id);
    showPreset();
  };
  const refreshList = async (chosen) => {
    const { items } = await api("GET", "/v1/senders");
    senders.splice(0, senders.length, ...items);
    render(list, html`<legend>${t("sender.pick")}</legend>${items.length ? items.map((s) => senderLine(s, chosen)) : html`<p>${t("common.none")}</p>`}`);
  };
  if (!campaign.sender_id && senders.length === 1) {
    // The only sender there is: chosen for the person, who can still add another.
    try {
      await api("PATCH", `/v1/campaigns/${campaign.id}`, { sender_id: senders[0].id });
      campaign.sender_id = senders[0].id;
    } catch (error) {
      showError(result, error);
    }
  }
  await refreshList(campaign.sender_id);

  form.preset.addEventListener("change", () => {
    const preset = showPreset();
    if (!preset) return;
    form.host.value = preset.host;
    form.port.value = preset.port;
    form.security.value = preset.security;
  });
  section.querySelector("#new-instead").addEventListener("click", () => { edit(null); form.from_email.focus(); });
  // Choosing with the arrow keys only chooses: checking the server is a button of its own.
  list.addEventListener("change", async (event) => {
    if (event.target.name !== "sender") return;
    campaign.sender_id = Number(event.target.value);
    try {
      await api("PATCH", `/v1/campaigns/${campaign.id}`, { sender_id: campaign.sender_id });
    } catch (error) {
      showError(result, error);
    }
  });
  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    const sender = senders.find((s) => s.id === Number(button.dataset.edit || button.dataset.check));
    if (button.dataset.edit) {
      section.querySelector("#sender-details").open = true;
      edit(sender);
      form.from_email.focus();
    } else if (button.dataset.check) {
      await verify(sender.id, result);
      await refreshList(campaign.sender_id);
      result.focus(); // the list was drawn again under the button: the answer is where to read on
    }
  });
  // The server's answer was about what was sent before: it goes once the form is typed in or sent again.
  const forgetAnswer = () => { if (result.querySelector(".error")) result.replaceChildren(); };
  form.addEventListener("input", forgetAnswer);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    forgetAnswer();
    if (!showFieldProblems(senderChecks(form, password, "sender-problem-"))) return;
    const body = { from_email: form.from_email.value, from_name: form.from_name.value };
    if (form.password.value) body.password = form.password.value;
    if (form.preset.value) body.preset = form.preset.value;
    if (form.host.value) body.host = form.host.value;
    if (form.port.value) body.port = Number(form.port.value);
    if (form.host.value) body.security = form.security.value;
    if (form.username.value) body.username = form.username.value;
    try {
      let saved;
      try {
        saved = editing ? await api("PATCH", `/v1/senders/${editing.id}`, body) : await api("POST", "/v1/senders", body);
      } catch (error) {
        // The same mailbox added before (say, with a wrong password): correct that one instead.
        const same = error.body?.error?.code === "sender_exists" && senders.find((s) => s.from_email.toLowerCase() === body.from_email.toLowerCase());
        if (!same) throw error;
        saved = await api("PATCH", `/v1/senders/${same.id}`, body);
      }
      edit(saved); // from now on the form corrects this sender
      campaign.sender_id = saved.id;
      await api("PATCH", `/v1/campaigns/${campaign.id}`, { sender_id: saved.id });
      const ok = await verify(saved.id, result);
      await refreshList(saved.id);
      if (ok) {
        section.querySelector("#sender-details").open = false;
        edit(null);
        list.querySelector(`input[value="${saved.id}"]`)?.focus();
      }
    } catch (error) {
      if (error.code === "smtp_password_required") { // another server: the saved password is not sent there unasked
        showFieldProblems([[form.password, "sender-problem-password", error.message]]);
        return;
      }
      showError(result, error.body?.error ? new Error(error.body.error.message) : error);
      result.querySelector(".error")?.setAttribute("tabindex", "-1");
      result.querySelector(".error")?.focus();
    }
  });
}

async function verify(senderId, result) {
  render(result, html`<p>${t("sender.verifying")}</p>`);
  try {
    await api("POST", `/v1/senders/${senderId}/verify`);
    render(result, html`<p class="notice">${t("sender.verified")}</p>`);
    return true;
  } catch (error) {
    showError(result, error.body?.error ? new Error(error.body.error.message) : error);
    const problem = result.querySelector(".error");
    problem?.setAttribute("tabindex", "-1");
    problem?.focus();
    return false;
  }
}

// Step 3 — message

// The fields a message can use, named as the file writes its columns («ФИО», «Эл. почта»); the token
// inserted is the field's name ({{ фио }}). The address column is always {{ email }}.
function mergeFields(upload) {
  const columns = upload?.columns || [];
  const emailAt = upload?.dialect?.email_column;
  const label = (c, i) => (c.label === `Column ${i + 1}` ? t("contacts.column", { n: i + 1 }) : c.label);
  const email = { field: "email", label: columns[emailAt] && upload.dialect.has_header ? label(columns[emailAt], emailAt) : t("auth.email") };
  return [email, ...columns.map((c, i) => ({ field: c.field, label: label(c, i) })).filter((_, i) => i !== emailAt)];
}

async function messageStep(section, campaign) {
  const upload = campaign.upload_id ? await api("GET", `/v1/uploads/${campaign.upload_id}`) : null;
  const fields = mergeFields(upload);
  let sourceMode = false;
  const rows = upload?.report?.rows ?? 0; // contacts in the file: the preview's row numbers go up to it
  let previewed = 1; // the contact the preview shows; the test goes to it too
  // A draft is saved whatever it lacks; going on to send it needs a subject and a text, said at
  // each field (the walk learnt it only from the final confirmation).
  const sendable = () => showFieldProblems([
    [section.querySelector("#subject"), "subject-problem", section.querySelector("#subject").value.trim() ? "" : t("message.needsubject")],
    [sourceMode ? source : section.querySelector("#editor"), "body-problem", hasContent(bodyHtml()) ? "" : t("message.needbody")],
  ]);
  const nav = nextButtons(campaign, 3, () => save(), sendable);
  render(section, html`<h2>${t("wizard.step3")}</h2>
    <label>${t("wizard.name")}<input id="name" value="${campaign.name}" maxlength="200"></label>
    <label>${t("message.subject")}<input id="subject" value="${campaign.subject}" maxlength="998" required></label>
    <span class="error field-error" id="subject-problem"></span>
    <p id="save-state" class="hint" aria-live="polite"></p><p id="restored" class="notice" aria-live="polite"></p>
    <div class="toolbar" role="toolbar" aria-label="${t("message.body")}">
      <button type="button" data-cmd="bold"><b>B</b><span class="visually-hidden">${t("message.bold")}</span></button>
      <button type="button" data-cmd="italic"><i>I</i><span class="visually-hidden">${t("message.italic")}</span></button>
      <button type="button" data-cmd="list">• ${t("message.list")}</button>
      <button type="button" data-cmd="link">${t("message.link")}</button>
      <button type="button" data-cmd="image">${t("message.image")}</button>
      <button type="button" id="toggle-source" aria-pressed="false">${t("message.source")}</button>
      <label>${t("message.fields")} <select id="field" aria-describedby="field-target">${fields.map((f) => html`<option value="${f.field}">${f.label} ({{ ${f.field} }})</option>`)}</select></label>
      <button type="button" id="insert-field" aria-describedby="field-target">${t("message.insertfield")}</button>
      <span id="field-target" class="hint">${t("message.intobody")}</span>
    </div>
    <p id="source-hint" class="notice" hidden>${t("message.sourcehint")}</p>
    <div id="editor" class="editor" role="textbox" aria-multiline="true" aria-label="${t("message.body")}"></div>
    <span class="error field-error" id="body-problem"></span>
    ${editorDialogs()}
    <textarea id="source" class="source" rows="14" hidden aria-label="${t("message.source")}"></textarea>
    <form id="preview-row" class="row" novalidate><label>${t("message.preview")} <input id="row" type="number" min="1" ${rows ? html`max="${rows}"` : ""} value="1" class="narrow"></label>
      <button type="submit" id="refresh">${t("contacts.preview")}</button></form>
    <p id="undefined" class="warning" aria-live="polite"></p>
    <p><strong id="preview-subject"></strong></p>
    <iframe id="preview" title="${t("contacts.preview")}" sandbox="allow-same-origin allow-popups allow-popups-to-escape-sandbox" class="preview"></iframe>
    <form id="test" class="row" novalidate><label>${t("message.testto")}<input name="email" type="email" required autocomplete="email"></label>
      <button type="submit">${t("message.test")}</button></form><span class="error field-error" id="test-problem"></span><div id="test-result" aria-live="polite"></div>${nav.fragment}`);
  const editor = new window.Squire(section.querySelector("#editor"), { blockTag: "P" });
  const source = section.querySelector("#source");
  const bodyHtml = () => (sourceMode ? source.value : editor.getHTML());
  const saveState = section.querySelector("#save-state");
  // Work in progress lives in this browser until the server has it: a reload, the browser's Back,
  // a step link or a template the server refuses for now never loses what was typed.
  const localKey = `sendpy.draft.${campaign.id}`;
  const current = () => ({ name: section.querySelector("#name").value, subject: section.querySelector("#subject").value, html_body: bodyHtml() });
  const kept = JSON.parse(localStorage.getItem(localKey) || "null");
  editor.setHTML(campaign.html_body || "<p></p>");
  // What the server has, as this page shows it (the editor may normalise the stored HTML).
  let onServer = JSON.stringify(current());
  const restore = kept && JSON.stringify({ ...current(), ...kept }) !== onServer;
  if (restore) {
    section.querySelector("#name").value = kept.name;
    section.querySelector("#subject").value = kept.subject;
    editor.setHTML(kept.html_body || "<p></p>");
    section.querySelector("#restored").textContent = t("message.restored");
  } else {
    localStorage.removeItem(localKey);
  }
  let dirty = restore, timer = null;
  async function save() {
    clearTimeout(timer);
    const values = current();
    localStorage.setItem(localKey, JSON.stringify(values));
    const saving = api("PATCH", `/v1/campaigns/${campaign.id}`, values);
    pendingSave = saving;
    await saving;
    onServer = JSON.stringify(values);
    if (JSON.stringify(current()) === onServer) {
      dirty = false;
      localStorage.removeItem(localKey);
    }
    saveState.textContent = t("message.saved");
    render(section.querySelector("#nav-error"), html``); // a refusal under «Next» is answered now
  }
  const autosave = () => save().catch((error) => {
    // "No connection" already says the text is kept here; a server's refusal gets the sentence.
    const reason = error.message.trim();
    saveState.textContent = error.offline ? reason
      : t("message.notsaved", { reason: /[.!?…]$/.test(reason) ? reason : `${reason}.` });
  });
  const changed = () => {
    if (JSON.stringify(current()) === onServer) return; // e.g. the editor settling its own HTML
    dirty = true;
    localStorage.setItem(localKey, JSON.stringify(current()));
    saveState.textContent = t("message.unsaved");
    clearTimeout(timer);
    timer = setTimeout(autosave, AUTOSAVE_MS);
  };
  for (const id of ["name", "subject", "source"]) section.querySelector(`#${id}`).addEventListener("input", changed);
  editor.addEventListener("input", changed);
  const warnBeforeClosing = (event) => { if (dirty) event.preventDefault(); };
  window.addEventListener("beforeunload", warnBeforeClosing);
  flushDraft = () => { if (dirty) autosave(); };
  window.addEventListener("hashchange", () => {
    window.removeEventListener("beforeunload", warnBeforeClosing);
    flushDraft(); // leaving the wizard altogether; within it, wizard() has flushed already
  }, { once: true });
  if (restore) autosave();
  section.querySelectorAll("[data-cmd]").forEach((button) => button.addEventListener("click", async () => {
    const command = button.dataset.cmd;
    if (command === "bold") editor.bold();
    if (command === "italic") editor.italic();
    if (command === "list") editor.makeUnorderedList();
    if (command === "link") await insertLink(editor, section); // focus back in the editor, at the link
    if (command === "image") await insertImage(editor, section);
    if (command !== "image" && command !== "link") editor.focus();
  }));
  // In the HTML source the formatting buttons have nothing to act on (a link made there was lost):
  // they are off until the visual editor is back. Inserting a field works in both.
  const toggle = section.querySelector("#toggle-source");
  toggle.addEventListener("click", () => {
    sourceMode = !sourceMode;
    if (sourceMode) source.value = editor.getHTML();
    else editor.setHTML(source.value);
    source.hidden = !sourceMode;
    section.querySelector("#editor").hidden = sourceMode;
    section.querySelector("#source-hint").hidden = !sourceMode;
    toggle.setAttribute("aria-pressed", String(sourceMode));
    if (sourceMode) toggle.setAttribute("aria-describedby", "source-hint");
    else toggle.removeAttribute("aria-describedby");
    section.querySelectorAll("[data-cmd]").forEach((button) => { button.disabled = sourceMode; });
  });
  // Choosing a field with the arrow keys only chooses it; the button (or Enter) inserts it where the
  // cursor was last: in the subject or in the message, whichever had focus before the picker.
  const subject = section.querySelector("#subject");
  let intoSubject = false;
  const target = (toSubject) => () => {
    intoSubject = toSubject;
    section.querySelector("#field-target").textContent = t(toSubject ? "message.intosubject" : "message.intobody");
  };
  subject.addEventListener("focus", target(true));
  // Tab into the subject selects all of it: inserting then goes at its end, not over the subject.
  // A selection the person makes (keys other than Tab, the mouse) is theirs to replace.
  let selectedByFocus = false;
  subject.addEventListener("focus", () => { selectedByFocus = true; });
  subject.addEventListener("keydown", (event) => { if (!["Tab", "Shift"].includes(event.key)) selectedByFocus = false; });
  subject.addEventListener("mouseup", () => { selectedByFocus = false; });
  section.querySelector("#editor").addEventListener("focusin", target(false));
  source.addEventListener("focus", target(false));
  const insertField = () => {
    const token = `{{ ${section.querySelector("#field").value} }}`;
    const into = intoSubject ? subject : sourceMode ? source : null;
    const whole = into === subject && selectedByFocus && into.selectionStart === 0 && into.selectionEnd === into.value.length;
    if (whole) into.setSelectionRange(into.value.length, into.value.length);
    if (into) into.setRangeText(token, into.selectionStart, into.selectionEnd, "end");
    else editor.insertPlainText(token);
    changed();
    (into ?? editor).focus(); // go on typing after the field
  };
  section.querySelector("#insert-field").addEventListener("click", insertField);
  section.querySelector("#field").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      insertField();
    }
  });
  const rowInput = section.querySelector("#row");
  // Only the latest preview asked for speaks: the one the page asks for on opening could answer
  // after a later click's "no connection" and wipe it.
  let asked = 0;
  const refresh = async () => {
    const mine = ++asked;
    const undefinedNote = section.querySelector("#undefined");
    const row = Number(rowInput.value);
    if (!Number.isInteger(row) || row < 1 || (rows && row > rows)) {
      showError(undefinedNote, new Error(t("message.rowrange", { n: number(rows) })));
      rowInput.setAttribute("aria-describedby", "undefined");
      rowInput.focus();
      return;
    }
    rowInput.removeAttribute("aria-describedby");
    try {
      if (dirty) await save();
      const preview = await api("POST", `/v1/campaigns/${campaign.id}/preview`, { row });
      if (mine !== asked) return;
      // The frame is emptied while it loads: the subject above it must not name another row meanwhile.
      section.querySelector("#preview-subject").textContent = "";
      if (!await showPreview(section.querySelector("#preview"), preview.html, () => mine === asked)) return;
      previewed = row;
      section.querySelector("#preview-subject").textContent = preview.subject;
      undefinedNote.textContent = preview.undefined.length ? t("message.undefined", { names: preview.undefined.join(", ") }) : "";
    } catch (error) {
      if (mine === asked) showError(undefinedNote, error);
    }
  };
  // Enter in the row number shows that contact, as the button does.
  section.querySelector("#preview-row").addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  section.querySelector("#test").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = section.querySelector("#test-result");
    const to = event.target.email;
    result.replaceChildren();
    // The page's words next to the field, not the browser's bubble; the server judges the rest.
    const typed = to.value.trim();
    if (!showFieldProblems([[to, "test-problem", !typed ? t("message.notestto") : /^[^\s@]+@[^\s@]+$/.test(typed) ? "" : t("auth.bademail")]])) return;
    try {
      if (dirty) await save();
      const sent = await api("POST", `/v1/campaigns/${campaign.id}/test`, { email: typed, row: previewed });
      render(result, html`<p class="notice">${t("message.testsent", { to: sent.to })}</p>`);
    } catch (error) {
      // Said under «Адрес для теста»: the API's «в поле «эл. почта»» names a field the page does not have.
      if (error.field === "email") showFieldProblems([[to, "test-problem", error.message.replace(/ (в поле «[^»]*»|in '[^']*')/, "")]]);
      else showError(result, error);
    }
  });
  nav.bind(section);
  if (campaign.html_body) refresh();
}

// The preview frame holds preview.html, a document with a policy of its own: the email as a mail
// client shows it (inline CSS, remote images) and never a script — its sandbox has no
// allow-scripts, nor has its Content-Security-Policy. A srcdoc frame would inherit the app's strict
// policy and drop the email's styles and images. The frame is same-origin (allow-same-origin), so
// the HTML is parsed here with the frame's own parser, under the frame's policy, and put in place.
async function showPreview(frame, markup, current) {
  const loaded = new Promise((resolve) => frame.addEventListener("load", resolve, { once: true }));
  frame.src = "preview.html"; // a fresh document every time: a link followed in the preview leaves it
  await loaded;
  // A later preview was asked for while this one loaded: it alone fills the frame (false: not shown).
  if (!current()) return false;
  // Without a connection the frame holds the browser's error page, of no origin of ours.
  const doc = frame.contentDocument;
  if (!doc || !doc.location.href.endsWith("preview.html")) throw new OfflineError();
  // Tabbing into the frame focuses its document, which no selector of this page sees: say it here.
  frame.contentWindow.addEventListener("focus", () => frame.classList.add("focused"));
  frame.contentWindow.addEventListener("blur", () => frame.classList.remove("focused"));
  const parsed = new frame.contentWindow.DOMParser().parseFromString(markup, "text/html");
  // Links open in a new tab, as in a webmail, instead of replacing the preview; they are not Tab
  // stops, so the keyboard passes the preview in one step. Anything but http(s) and mailto is dead.
  for (const link of parsed.querySelectorAll("a[href]")) {
    if (/^(https?:|mailto:)/i.test(link.getAttribute("href").trim())) {
      link.target = "_blank";
      link.rel = "noopener noreferrer";
    } else {
      link.removeAttribute("href");
    }
    link.tabIndex = -1;
  }
  doc.replaceChild(doc.importNode(parsed.documentElement, true), doc.documentElement);
  return true;
}

// Step 4 — review

const MAX_AHEAD_MS = 366 * 24 * 3600 * 1000; // as shared/campaigns/schedule.py allows
// datetime-local's value: a year of more than four digits is "valid" there, yet no Date.
const LOCAL_MOMENT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/;

// The moment typed in the schedule field, or why it cannot be one (in the reader's words).
function scheduledMoment(value) {
  const at = LOCAL_MOMENT.test(value) ? new Date(value) : null;
  if (!at || Number.isNaN(at.getTime())) return { problem: t("review.badmoment") };
  if (at.getTime() <= Date.now() + 30_000) return { problem: t("review.past") };
  if (at.getTime() > Date.now() + MAX_AHEAD_MS) return { problem: t("review.toofar") };
  return { at };
}

// "Before sending, set «тема»" is the server's general sentence: the review says what to do.
function explained(error) {
  const key = `review.needs.${error.field}`;
  return error.code === "start_needs" && t(key) !== key ? new Error(t(key)) : error;
}

async function reviewStep(section, campaign) {
  const upload = campaign.upload_id ? await api("GET", `/v1/uploads/${campaign.upload_id}`) : null;
  const sender = campaign.sender_id ? await api("GET", `/v1/senders/${campaign.sender_id}`) : null;
  const valid = upload?.report?.valid ?? 0;
  const zone = zoneName();
  // Behind another campaign of the same account, its plan says which one goes first.
  const plan = planText(campaign.plan, { behind: campaign.waiting_for });
  // What Send would be refused for is said before it is pressed, with the way to the step.
  const lacking = [!campaign.subject?.trim() && "subject", !hasContent(campaign.html_body) && "html_body"].filter(Boolean);
  const confirmText = sender ? t("review.confirm", { n: number(valid), plan }).replace(/\.\.$/, ".")
    : t("review.confirmnosender", { n: number(valid) });
  render(section, html`<h2>${t("review.summary")}</h2>
    <dl class="summary">
      <dt>${t("review.recipients")}</dt><dd id="review-count">${number(valid)}</dd>
      ${upload?.report && html`<dt>${t("review.notsent")}</dt><dd id="review-skipped">${t("review.skipped", {
        suppressed: number(upload.report.suppressed), duplicates: number(upload.report.duplicates),
        problems: number((upload.report.empty ?? 0) + upload.report.invalid) })}</dd>`}
      <dt>${t("review.from")}</dt><dd>${sender ? html`${sender.from_name} &lt;${sender.from_email}&gt;` : "—"}</dd>
      <dt>${t("review.subject")}</dt><dd>${campaign.subject || "—"}</dd>
      <dt>${t("sender.limits")}</dt><dd>${sender ? `${sender.per_minute ? number(sender.per_minute) : "∞"} ${t("sender.perminute")}, ${sender.per_day ? number(sender.per_day) : "∞"} ${t("sender.perday")}` : "—"}</dd>
      <dt>${t("review.duration")}</dt><dd id="review-plan">${sender ? plan : "—"}</dd>
    </dl>${valid === 0 && html`<p class="warning" id="no-recipients">${t("review.norecipients")}</p>`}
    ${lacking.length > 0 && html`<p class="warning" id="review-lacking">${lacking.map((f) => t(`review.needs.${f}`)).join(" ")}
      <a href="#/wizard/${campaign.id}/3">${t("wizard.step3")}</a></p>`}
    <div id="start-error" aria-live="polite"></div><p class="notice" id="unscheduled" hidden>${t("review.unscheduled")}</p>
    <form id="later" class="row" novalidate><label>${t("review.later")} <input type="datetime-local" name="at" required></label>
      <span class="hint">${t("review.zone", { zone })}</span>
      <button type="submit" ${valid === 0 ? "disabled" : ""}>${t("review.schedule")}</button></form>
    <div class="row wizard-nav"><a class="button" href="#/wizard/${campaign.id}/3">${t("common.back")}</a>
    <button type="button" class="primary" id="send" ${valid === 0 ? "disabled" : ""}>${t("review.send")}</button></div>
    <dialog id="confirm-send" aria-labelledby="confirm-title"><form method="dialog">
      <h3 id="confirm-title">${t("review.confirmtitle")}</h3>
      <p id="confirm-text">${confirmText}</p>
      <div class="row"><button class="primary" value="send">${t("review.send")}</button><button value="cancel" autofocus>${t("common.cancel")}</button></div>
    </form></dialog>
    <dialog id="confirm-schedule" aria-labelledby="schedule-title"><form method="dialog">
      <h3 id="schedule-title">${t("review.scheduletitle")}</h3><p id="schedule-text"></p>
      <div class="row"><button class="primary" value="schedule">${t("review.schedule")}</button><button value="cancel" autofocus>${t("common.cancel")}</button></div>
    </form></dialog>`);
  const problem = section.querySelector("#start-error");
  const when = section.querySelector("#later").at;
  // Come from «Отменить расписание и изменить»: the time it was set for stays in the field, and the
  // page says the campaign is a draft again (it came back with an empty field and no word).
  const unscheduled = sessionStorage.getItem(`sendpy.unscheduled.${campaign.id}`);
  sessionStorage.removeItem(`sendpy.unscheduled.${campaign.id}`);
  if (unscheduled !== null) {
    const at = new Date(unscheduled);
    const pad = (n) => String(n).padStart(2, "0");
    if (unscheduled && !Number.isNaN(at.getTime())) {
      when.value = `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T${pad(at.getHours())}:${pad(at.getMinutes())}`;
    }
    section.querySelector("#unscheduled").hidden = false;
    focusOn(section.querySelector("#unscheduled"));
  }
  const fail = (error) => {
    showError(problem, explained(error));
    focusOn(problem.querySelector(".error"));
  };
  // A problem with the time is read where the time is typed, and goes once it is typed again.
  const wrongTime = (message) => {
    showError(problem, new Error(message));
    when.setAttribute("aria-invalid", "true");
    when.setAttribute("aria-describedby", "start-error");
    when.focus();
  };
  when.addEventListener("input", () => {
    if (!when.hasAttribute("aria-invalid")) return;
    problem.replaceChildren();
    when.removeAttribute("aria-invalid");
    when.removeAttribute("aria-describedby");
  });
  const key = crypto.randomUUID();
  const dialog = section.querySelector("#confirm-send");
  section.querySelector("#send").addEventListener("click", () => {
    dialog.returnValue = ""; // Escape keeps the last answer: never "send" from before
    dialog.showModal();
  });
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "send") {
      section.querySelector("#send").focus();
      return;
    }
    try {
      await api("POST", `/v1/campaigns/${campaign.id}/start`, undefined, { "Idempotency-Key": key });
      location.hash = `#/campaign/${campaign.id}`;
    } catch (error) {
      fail(error);
    }
  });
  // Scheduling asks first, as sending now does: when, in whose time, how many emails.
  const scheduling = section.querySelector("#confirm-schedule");
  let chosen = null;
  section.querySelector("#later").addEventListener("submit", (event) => {
    event.preventDefault();
    // datetime-local is the person's own wall clock; toISOString carries it as an exact moment.
    const { at, problem: wrong } = scheduledMoment(when.value);
    if (wrong) return wrongTime(wrong);
    chosen = at;
    section.querySelector("#schedule-text").textContent = t("review.scheduleconfirm", {
      n: number(valid), at: dateTime(at), zone });
    scheduling.returnValue = "";
    scheduling.showModal();
  });
  scheduling.addEventListener("close", async () => {
    if (scheduling.returnValue !== "schedule") return section.querySelector("#later button").focus();
    const at = chosen;
    try {
      await api("POST", `/v1/campaigns/${campaign.id}/schedule`, { at: at.toISOString() });
      location.hash = `#/campaign/${campaign.id}`;
    } catch (error) {
      if (error.field === "at") wrongTime(error.message);
      else fail(error);
    }
  });
}

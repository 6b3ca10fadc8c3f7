// The account's suppression list: addresses none of the user's mail goes to (unsubscribed,
// bounced, added by hand, imported). Search (by the start of an address, or @domain: what the
// database can answer from an index on a list of a million), add, remove, import a CSV, export one.

import { api } from "../api.js";
import { confirmAction, html, main, render, showError } from "../dom.js";
import { currentLanguage, number, t } from "../i18n.js";

export async function suppressionsPage(search = "") {
  const query = new URLSearchParams({ q: search });
  const { items, next_after: more, total, total_capped: capped } = await api("GET", `/v1/suppressions?${query}`);
  render(main(), html`<h1>${t("suppress.title")}</h1>
    <p>${t("suppress.about")}</p>
    <p>${total == null ? "" : `${t("suppress.total", { n: number(total) + (capped ? "+" : "") })} · `}<a href="/v1/suppressions/export?lang=${currentLanguage()}" download>${t("suppress.export")}</a></p>
    <form id="search" class="row" role="search"><label>${t("suppress.search")}<input name="q" type="search" minlength="2" value="${search}" aria-describedby="search-hint"></label>
      <button type="submit">${t("suppress.find")}</button></form>
    <p id="search-hint"><small>${t("suppress.searchhint")}</small></p>
    ${items.length ? html`<div class="scroll" tabindex="0" role="region" aria-label="${t("suppress.title")}"><table><thead><tr><th>${t("suppress.email")}</th><th>${t("suppress.reason")}</th><th>${t("suppress.when")}</th><th><span class="visually-hidden">${t("common.delete")}</span></th></tr></thead><tbody>
      ${items.map((i) => html`<tr><td>${i.email}</td><td>${t(`suppress.reason.${i.reason}`)}${i.sender_email ? html`<br><small>${i.sender_email}</small>` : ""}</td>
        <td>${new Date(i.created_at).toLocaleDateString()}</td>
        <td><button type="button" data-remove="${i.email}" aria-label="${t("suppress.removenamed", { email: i.email })}">${t("common.delete")}</button></td></tr>`)}
      </tbody></table></div>${more ? html`<p>${t("suppress.more")}</p>` : ""}` : html`<p>${search ? t("suppress.nomatch") : t("suppress.empty")}</p>`}
    <div id="result" aria-live="polite"></div>
    <h2>${t("suppress.addtitle")}</h2>
    <form id="add"><label>${t("suppress.add")}<textarea name="emails" rows="4"></textarea></label>
      <button type="submit">${t("common.save")}</button></form>
    <form id="import"><label>${t("suppress.import")}<input name="file" type="file" accept=".csv,.txt,text/csv,text/plain"></label>
      <button type="submit">${t("suppress.importbutton")}</button></form>`);
  const result = document.getElementById("result");
  // After adding or importing, the whole list again: the new addresses are seldom what was searched
  // for, and «Added: 2» beside «No address matches» reads as a failure. A removal keeps the search.
  const done = async (message, keepSearch = false) => {
    await suppressionsPage(keepSearch ? search : "");
    const shown = document.getElementById("result");
    render(shown, html`<p class="notice" tabindex="-1">${message}</p>`);
    shown.querySelector("p").focus();
  };
  document.getElementById("search").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await suppressionsPage(event.target.q.value.trim());
      document.querySelector("#search input[name=q]")?.focus(); // the page is drawn again: back in the field
    } catch (error) {
      showError(result, error);
    }
  });
  document.getElementById("add").addEventListener("submit", async (event) => {
    event.preventDefault();
    // One address a line (or several, with «,» or «;»): a line is never split at its spaces, so a
    // mistake is quoted whole («не адрес», not «не»), and the valid lines are saved without it.
    const entries = event.target.emails.value.split(/\r?\n/)
      .flatMap((text, i) => text.split(/[,;]/).map((value) => ({ line: i + 1, value: value.trim() })))
      .filter((entry) => entry.value);
    try {
      const { added, problems = [] } = await api("POST", "/v1/suppressions", { emails: entries.map((e) => e.value), partial: true });
      const left = problems.map((p) => t("suppress.problemline", { line: entries[p.index].line, value: p.value, reason: p.reason }));
      await done(t("suppress.added", { n: number(added) }) + (left.length ? ` ${t("suppress.problems")} ${left.join("; ")}` : ""));
      // The lines left out stay in the field, to be corrected and saved again.
      document.querySelector("#add textarea").value = problems.map((p) => p.value).join("\n");
    } catch (error) {
      showError(result, error);
      const shown = result.querySelector("p");
      shown.tabIndex = -1;
      shown.focus();
    }
  });
  document.getElementById("import").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = event.target.file.files[0];
    if (!file) return showError(result, new Error(t("suppress.nofile")));
    try {
      const answer = await api("POST", "/v1/suppressions/import", await file.arrayBuffer());
      // Each line left out, with its number and why (the first 100; problem_count counts them all).
      const more = answer.problem_count - answer.problems.length;
      const skipped = answer.problems.map((p) => t("suppress.problemline", { line: p.line, value: p.value, reason: p.reason })).join("; ")
        + (more > 0 ? ` ${t("suppress.moreproblems", { n: more })}` : "");
      await done(t("suppress.imported", { n: number(answer.added), already: number(answer.already) }) + (skipped ? ` ${t("suppress.problems")} ${skipped}` : ""));
    } catch (error) {
      showError(result, error);
    }
  });
  main().querySelectorAll("[data-remove]").forEach((button) => button.addEventListener("click", async () => {
    const remove = await confirmAction({ title: t("suppress.confirmtitle"), opener: button,
      text: t("suppress.confirm", { email: button.dataset.remove }), action: t("suppress.remove") });
    if (!remove) return;
    try {
      // As a query parameter: an address may hold a "/", which a path would split.
      await api("DELETE", `/v1/suppressions?${new URLSearchParams({ email: button.dataset.remove })}`);
      await done(t("suppress.removed", { email: button.dataset.remove }), true);
    } catch (error) {
      showError(result, error);
      const shown = result.querySelector("p"); // the dialog is gone: read on at the reason
      shown.tabIndex = -1;
      shown.focus();
    }
  }));
}

// Building the page safely. Markup is written only with the `html` tag, which escapes every
// interpolated value; `render` is the one place that hands markup to the browser (innerHTML).
//
//   render(element, html`<p class="error">${message}</p>`)
//
// In `html`, each `${value}` becomes text: strings (user data and translations alike), numbers
// and other values are escaped, so they are safe between tags and inside quoted attributes.
// Exceptions: a fragment made by `html` is already safe and goes in as is (no double escaping);
// an array is its items, each treated the same way, joined without separator; null, undefined
// and false are nothing (for `${condition && html`…`}`). `raw(string)` marks constant markup
// written in this code as safe; never pass it anything that came from the user or the API.

import { t } from "./i18n.js";

class SafeHtml {
  constructor(markup) {
    this.markup = markup;
  }

  toString() {
    return this.markup;
  }
}

const ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

function escapeText(value) {
  return String(value).replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

function markupOf(value) {
  if (value instanceof SafeHtml) return value.markup;
  if (Array.isArray(value)) return value.map(markupOf).join("");
  if (value === null || value === undefined || value === false) return "";
  return escapeText(value);
}

// The template tag: html`<li>${name}</li>` → a safe fragment with `name` escaped.
export function html(strings, ...values) {
  let markup = strings[0];
  values.forEach((value, i) => {
    markup += markupOf(value) + strings[i + 1];
  });
  return new SafeHtml(markup);
}

// Constant markup from this code base that must not be escaped. Not for user or API data.
export function raw(markup) {
  return new SafeHtml(String(markup));
}

// Replaces the element's content. Anything that is not a fragment is escaped and shown as text.
export function render(element, fragment) {
  element.innerHTML = markupOf(fragment);
}

// The <main> element every page draws into.
export const main = () => document.getElementById("app");

// Shows an error (an exception, usually an ApiError with the server's message) in `where`.
export function showError(where, error) {
  const message = error instanceof Error ? error.message : String(error);
  render(where, html`<p class="error" role="alert">${message || t("common.error")}</p>`);
}

// A form's own check, said next to each field instead of the browser's bubbles (English on a
// Russian page, and gone after a few seconds). `checks` is [[input, elementId, message], …], an
// empty message meaning the field is fine: each message goes into its element, tied to the field
// (aria-invalid, aria-describedby — a hint the field already names stays), and focus goes to the
// first bad field. A message goes as soon as its field is typed in. True when all are fine.
export function showFieldProblems(checks) {
  for (const [input, id, message] of checks) {
    if (message) {
      document.getElementById(id).textContent = message;
      input.setAttribute("aria-invalid", "true");
      const described = (input.getAttribute("aria-describedby") || "").split(" ").filter((x) => x && x !== id);
      input.setAttribute("aria-describedby", [...described, id].join(" "));
      input.addEventListener("input", () => clearFieldProblem(input, id), { once: true });
    } else {
      clearFieldProblem(input, id);
    }
  }
  const first = checks.find(([, , message]) => message);
  first?.[0].focus();
  return !first;
}

export function clearFieldProblem(input, id) {
  const where = document.getElementById(id);
  if (where) where.textContent = "";
  input.removeAttribute("aria-invalid");
  const rest = (input.getAttribute("aria-describedby") || "").split(" ").filter((x) => x && x !== id);
  if (rest.length) input.setAttribute("aria-describedby", rest.join(" "));
  else input.removeAttribute("aria-describedby");
}

// Asks before something that cannot be undone, in the page's own modal <dialog> rather than the
// browser's confirm(): in the page's language, naming what goes, Cancel first. Tab and Shift+Tab
// stay inside it; Escape or Cancel resolve false and give focus back to `opener` (the button that
// asked); the action resolves true and leaves focus to the caller, whose page usually changes.
export function confirmAction({ title, text, action, opener = document.activeElement }) {
  const dialog = document.createElement("dialog");
  dialog.id = "ask";
  dialog.setAttribute("aria-labelledby", "ask-title");
  dialog.setAttribute("aria-describedby", "ask-text");
  render(dialog, html`<form method="dialog"><h2 id="ask-title">${title}</h2><p id="ask-text">${text}</p>
    <div class="row"><button value="confirm" class="danger">${action}</button>
    <button value="cancel" autofocus>${t("common.cancel")}</button></div></form>`);
  document.getElementById("ask")?.remove(); // one question at a time
  (main() || document.body).append(dialog);
  dialog.addEventListener("keydown", (event) => {
    if (event.key !== "Tab") return;
    const buttons = [...dialog.querySelectorAll("button")];
    const at = buttons.indexOf(document.activeElement);
    const next = event.shiftKey ? (at <= 0 ? buttons.length - 1 : at - 1) : (at + 1) % buttons.length;
    event.preventDefault();
    buttons[next].focus();
  });
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const yes = dialog.returnValue === "confirm";
      dialog.remove();
      if (!yes) opener?.focus();
      resolve(yes);
    }, { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

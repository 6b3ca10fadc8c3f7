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

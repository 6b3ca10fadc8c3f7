// The message editor's link and image dialogs: each a small form in a modal <dialog> that checks
// what was typed in the page's own words, and on closing gives focus back to the editor — after
// the link or image just put in, or, cancelled, where the caret was (the toolbar button that
// opened it is not where the person goes on typing).
//
//   ${editorDialogs()}                       in the message step's markup
//   await insertLink(editor, section)        on the toolbar's «Ссылка»

import { clearFieldProblem, html, showFieldProblems } from "./dom.js";
import { t } from "./i18n.js";

// Only http(s) and mailto links are taken: a javascript: URL in a newsletter is never what the
// author meant.
const LINK_URL = /^(https?:\/\/[^\s]+|mailto:[^\s]+)$/i;
// Images only over https: mail clients block plain-http images, and so does this page.
const IMAGE_URL = /^https:\/\/[^\s]+$/i;

export function editorDialogs() {
  return html`<dialog id="link-dialog" aria-labelledby="link-title"><form method="dialog" class="grid" novalidate>
      <h3 id="link-title">${t("message.link")}</h3>
      <label>${t("message.linktext")}<input name="text"></label>
      <label>${t("message.url")}<input name="url" type="url" required placeholder="https://example.ru/"></label>
      <p class="error" id="link-error" aria-live="polite"></p>
      <div class="row"><button class="primary" value="ok">${t("message.insert")}</button><button type="button" value="cancel" data-close>${t("common.cancel")}</button></div>
    </form></dialog>
    <dialog id="image-dialog" aria-labelledby="image-title"><form method="dialog" class="grid" novalidate>
      <h3 id="image-title">${t("message.image")}</h3>
      <label>${t("message.imageurl")}<input name="url" type="url" required placeholder="https://example.ru/logo.png"></label>
      <label>${t("message.alt")}<input name="alt" required></label>
      <p class="error" id="image-error" aria-live="polite"></p>
      <div class="row"><button class="primary" value="ok">${t("message.insert")}</button><button type="button" value="cancel" data-close>${t("common.cancel")}</button></div>
    </form></dialog>`;
}

const escapeText = (text) => text.replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]);
const escapeAttr = (text) => escapeText(text).replace(/"/g, "&quot;");

// Asks for a link and puts it in: around the selected text, or as the text typed in the dialog.
export async function insertLink(editor, root) {
  const values = await askFor(root.querySelector("#link-dialog"), { text: editor.getSelectedText() }, editor);
  if (!values) return;
  if (values.text && !editor.getSelectedText()) editor.insertHTML(`<a href="${escapeAttr(values.url)}">${escapeText(values.text)}</a>`);
  else editor.makeLink(values.url);
  editor.focus();
}

export async function insertImage(editor, root) {
  const values = await askFor(root.querySelector("#image-dialog"), {}, editor, IMAGE_URL, "message.badimage");
  if (values) editor.insertImage(values.url, { alt: values.alt });
  editor.focus();
}

// Resolves with the form's values, or null when cancelled (Cancel or Escape). Either way the
// editor has focus again first, with its caret (Squire keeps the selection it had when it lost
// focus, and gives it back on focus): what is inserted then goes where the caret was.
function askFor(dialog, initial, editor, allowed = LINK_URL, refusal = "message.badurl") {
  const form = dialog.querySelector("form");
  const problem = dialog.querySelector(".error");
  // The caret as the page has it now: Squire learns of a move (Ctrl+Home) from "selectionchange",
  // which may come after focus has left for the toolbar button, and it would give back the old one.
  const live = window.getSelection();
  const caret = live && live.rangeCount && editor.getRoot().contains(live.anchorNode)
    ? live.getRangeAt(0).cloneRange() : null;
  form.reset();
  for (const input of form.querySelectorAll("input")) clearFieldProblem(input, problem.id);
  for (const [name, value] of Object.entries(initial)) if (form[name]) form[name].value = value || "";
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    const finish = (values) => {
      form.removeEventListener("submit", submit);
      dialog.removeEventListener("cancel", cancel);
      dialog.close();
      editor.focus();
      if (caret) editor.setSelection(caret);
      resolve(values);
    };
    const submit = (event) => {
      event.preventDefault();
      const url = form.url.value.trim();
      const wrong = !allowed.test(url) ? [form.url, refusal] : form.alt && !form.alt.value.trim() ? [form.alt, "message.noalt"] : null;
      // The reason stays only while the field is as it was: typing again clears it (dom.js).
      if (wrong) return showFieldProblems([[wrong[0], problem.id, t(wrong[1])]]);
      finish(Object.fromEntries([...new FormData(form).entries()].map(([k, v]) => [k, String(v).trim()])));
    };
    const cancel = (event) => {
      event.preventDefault(); // closed here, so that focus goes to the editor and not back to the button
      finish(null);
    };
    form.addEventListener("submit", submit);
    dialog.addEventListener("cancel", cancel);
    dialog.querySelector("[data-close]").onclick = () => finish(null);
  });
}

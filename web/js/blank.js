// Whether an email's HTML shows anything: text (a merge field counts) or a picture; an editor left
// empty still holds "<p><br></p>". The server's rule (shared/mail/blank.py) has the last word; this
// one, for the wizard's «Далее», agrees with it on the same pictures and invisible characters
// (tests/test_blank_agreement.py). Read as text, not parsed: a document parsed here would be under
// this page's policy, which reports every style attribute of an email as a violation.
const PICTURE = /<(?:img|svg|picture|video|object|embed)\b|\bbackground(?:-image)?\s*[=:]/i;

export function hasContent(markup) {
  const html = (markup || "").replace(/<(style|script|title)\b[\s\S]*?<\/\1\s*>/gi, "").replace(/<!--[\s\S]*?-->/g, "");
  if (PICTURE.test(html)) return true;
  return html.replace(/<[^>]*>/g, "").replace(/&nbsp;|&#160;|&#xa0;/gi, " ").replace(/[\s\p{Cf}]/gu, "") !== "";
}

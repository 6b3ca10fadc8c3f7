// Whether an email's HTML shows anything: text (a merge field counts) or a picture; an editor left
// empty still holds "<p><br></p>". The server's rule (shared/mail/blank.py) has the last word; this
// one, for the wizard's «Далее», agrees with it on the same bodies (tests/test_blank_agreement.py).
// Read as text, not parsed: a document parsed here would be under this page's policy, which reports
// every style attribute of an email as a violation.

// Never seen by a reader, though a picture's name may stand in it: comments (an unclosed one runs to
// the end), the head, styles, scripts, and (the simple case of) an element hidden by its style.
const UNSEEN = /<!--[\s\S]*?(?:-->|$)|<(head|style|script|title)\b[\s\S]*?(?:<\/\1\s*>|$)|<(\w+)\b[^>]*display\s*:\s*none[^>]*>[\s\S]*?<\/\2\s*>/gi;
// A picture: an image element, or a background that is an image (a colour shows nothing).
const PICTURE = /<(?:img|svg|picture|video|object|embed)\b|\bbackground\s*=|\bbackground(?:-image)?\s*:[^;"'>]*url\(/i;
const TAG = /<[a-z\/!?][^>]*>/gi; // "< p>" is text, as a browser reads it
const NAMED = {
  nbsp: "\u00a0", ensp: "\u2002", emsp: "\u2003", thinsp: "\u2009", zwnj: "\u200c", zwj: "\u200d",
  shy: "\u00ad", lrm: "\u200e", rlm: "\u200f", ZeroWidthSpace: "\u200b",
};
const INVISIBLE = /[\s\p{Cf}\x1c-\x1f]/gu; // Python's isspace() also counts the file separators

function decoded(text) {
  return text.replace(/&#(\d+);?|&#x([0-9a-f]+);?|&([a-z]+);?/gi, (whole, dec, hex, name) => {
    if (name) return Object.hasOwn(NAMED, name) ? NAMED[name] : whole;
    const code = dec ? Number(dec) : parseInt(hex, 16);
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}

export function hasContent(markup) {
  const visible = (markup || "").replace(UNSEEN, "");
  if (PICTURE.test(visible)) return true;
  return decoded(visible.replace(TAG, "")).replace(INVISIBLE, "") !== "";
}

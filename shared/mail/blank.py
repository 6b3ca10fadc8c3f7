"""Whether an HTML body shows a reader anything: an editor's empty paragraph is not a message.

A rich-text editor cleared by its user leaves `<p><br></p>`; start and the one-shot send took it
for a body and mailed every recipient an empty email. A body is empty when the text a reader sees
(the same conversion that writes the plain-text part) has nothing but spaces and invisible
characters, and it shows no image.
"""

from __future__ import annotations

import re
import unicodedata

from shared.mail.compose import html_to_text
from shared.mail.template_checks import TemplateError, check_html_elements

# What a reader never sees, though a picture's name may stand in it: comments (an unclosed one runs
# to the end, as in a browser), the head, styles, scripts.
_UNSEEN = re.compile(r"<!--.*?(?:-->|$)|<(head|style|script|title)\b.*?(?:</\1\s*>|$)", re.I | re.S)
# A picture: an image element, or a background that is an image (a colour shows nothing).
_PICTURE = re.compile(r"<(?:img|svg|picture|video|object|embed)\b"
                      r"|\bbackground\s*=|\bbackground(?:-image)?\s*:[^;\"'>]*url\(", re.I)


def is_blank(html: str) -> bool:
    """True for an HTML body with no visible text and no image (which is refused as empty)."""
    if not html.strip():
        return True
    if _PICTURE.search(_UNSEEN.sub("", html)):
        return False
    try:
        check_html_elements(html)  # bounds the conversion below; a flood is refused elsewhere for its size
    except TemplateError:
        return False
    return all(char.isspace() or unicodedata.category(char) == "Cf" for char in html_to_text(html))

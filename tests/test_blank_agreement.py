"""The wizard's «Далее» and the server agree on what an empty message is.

The page had a rule of its own: only `<img` counted as a picture, and invisible characters as
text — an SVG-only body was stopped at «Далее» though the API takes it, and a body of zero-width
spaces passed the page to be refused at Start. `web/js/blank.js` now follows `shared/mail/blank.py`.
The attack on that (46 bodies) found the server itself mailing empty emails: a picture's name in a
comment, a style or the head, or a background that is only a colour, counted as a picture — a pasted
template shell (`<style>body{background:#fff}</style>` around `<p><br></p>`) went to every recipient.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from shared.mail.blank import is_blank

BLANK_JS = Path(__file__).resolve().parent.parent / "web" / "js" / "blank.js"

# Accepted by the server before, and mailed to every recipient as an email with nothing in it.
EMPTY_BUT_FOR_WHAT_NOBODY_SEES = [
    "<html><head><style>body{background:#fff;font-family:Arial}</style></head><body><p><br></p></body></html>",
    "<style>p{background:red}</style><p><br></p>", "<!-- <img src='x.png'> -->", "<script>'<img>'</script>",
    "<title>background=1</title>", "<div style='background:#ffffff'><p><br></p></div>",
    "<table width='100%' style='background-color: #f4f4f4'><tr><td><p><br></p></td></tr></table>",
]

BODIES = [
    "", "   ", "<p><br></p>", "<p>&nbsp;</p>", "<div>\u200b\u200d\ufeff</div>", "<p> \u2060 </p>",
    "<!-- only a comment -->", "<style>p { color: red }</style>", "<p>Hi</p>", "<p>{{ name }}</p>",
    "<img src='https://example.org/logo.png'>", "<svg width='10'></svg>", "<picture></picture>",
    "<video src='x'></video>", "<table><tr><td background='bg.png'></td></tr></table>",
    "<div style='background-image: url(x)'></div>", "<p><b>Привет</b></p>", "<p>\u00a0</p>",
    # The attack on this rule: what a reader never sees, a background that is only a colour, entities
    # of invisible characters, and what is text though it looks like markup.
    *EMPTY_BUT_FOR_WHAT_NOBODY_SEES,
    "&#8203;&#8203;", "&ZeroWidthSpace;&zwnj;", "&shy;", "&ensp;&emsp;&thinsp;", "&#160;&#xA0;", "&nbsp",
    "&NBSP;", "\u3164", "\u2800", "\x1c\x1d", "<p title='hi'></p>", "<br><br>", "<noscript>hi</noscript>",
    "{{ '' }}", "&lt;img&gt;", "background=", "<div style='display:none'>hidden</div>", "<![CDATA[ hi ]]>",
    "<!-- hi", "<! hi >", "<?xml hi ?>", "< p>", "{# hi #}", "<img src='https://t.example/p.gif' width='1'>",
]


def test_the_page_and_the_server_call_the_same_bodies_empty() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: scripts/bootstrap installs it")
    script = ("const { hasContent } = await import(process.argv[1]);"
              " console.log(JSON.stringify(JSON.parse(process.argv[2]).map(hasContent)));")
    run = subprocess.run([node, "--input-type=module", "-e", script, BLANK_JS.as_uri(), json.dumps(BODIES)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    page = dict(zip(BODIES, json.loads(run.stdout), strict=True))
    server = {body: not is_blank(body) for body in BODIES}
    assert page == server


def test_a_body_is_empty_whatever_hides_in_its_comments_head_and_styles() -> None:
    assert [body for body in EMPTY_BUT_FOR_WHAT_NOBODY_SEES if not is_blank(body)] == []

"""The wizard's «Далее» and the server agree on what an empty message is.

The page had a rule of its own: only `<img` counted as a picture, and invisible characters as
text — an SVG-only body was stopped at «Далее» though the API takes it, and a body of zero-width
spaces passed the page to be refused at Start. `web/js/blank.js` now follows `shared/mail/blank.py`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from shared.mail.blank import is_blank

BLANK_JS = Path(__file__).resolve().parent.parent / "web" / "js" / "blank.js"

BODIES = [
    "", "   ", "<p><br></p>", "<p>&nbsp;</p>", "<div>\u200b\u200d\ufeff</div>", "<p> \u2060 </p>",
    "<!-- only a comment -->", "<style>p { color: red }</style>", "<p>Hi</p>", "<p>{{ name }}</p>",
    "<img src='https://example.org/logo.png'>", "<svg width='10'></svg>", "<picture></picture>",
    "<video src='x'></video>", "<table><tr><td background='bg.png'></td></tr></table>",
    "<div style='background-image: url(x)'></div>", "<p><b>Привет</b></p>", "<p>\u00a0</p>",
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

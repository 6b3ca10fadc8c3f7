"""The frontend's structure, read from the files (no browser): markup reaches the page only through
web/js/dom.js, whose `html` tag escapes everything interpolated, and the pages do not import the
router. The escaping itself is checked by running dom.js in Node.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

JS = ROOT / "web" / "js"
DOM = JS / "dom.js"
ROUTER = JS / "app.js"
PAGES = JS / "pages"

# Everything that turns a string into markup. Only dom.js's render() may use one.
MARKUP_SINKS = re.compile(
    r"\.(?:innerHTML|outerHTML)\s*\+?=(?!=)|\binsertAdjacentHTML\b|\bdocument\.write(?:ln)?\b|\bcreateContextualFragment\b"
)
# `import … from "x"`, `export … from "x"`, `import "x"` at the start of a statement; `import("x")`.
IMPORT = re.compile(
    r"""^\s*(?:import|export)\b[^"';]*?\bfrom\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']""",
    re.MULTILINE,
)
# raw() skips escaping. Each use must be reviewed and listed here as {file: number of calls}.
REVIEWED_RAW_CALLS: dict[str, int] = {}


def modules() -> list[Path]:
    return sorted(JS.rglob("*.js"))


def imports(module: Path) -> list[Path]:
    found = []
    for match in IMPORT.finditer(module.read_text(encoding="utf-8")):
        target = next(group for group in match.groups() if group)
        assert target.startswith("."), (
            f"{module.relative_to(ROOT)} imports {target!r}: only relative modules are served"
        )
        found.append((module.parent / target).resolve())
    return found


def test_the_modules_are_where_the_structure_expects_them() -> None:
    assert DOM.is_file() and ROUTER.is_file()
    pages = {p.name for p in PAGES.glob("*.js")}
    assert {"landing.js", "campaigns.js", "wizard.js", "campaign.js", "guides.js"} <= pages
    assert not {"wizard.js", "campaign.js", "guides.js"} & {p.name for p in JS.glob("*.js")}, "pages live in pages/"
    index = (ROOT / "web" / "index.html").read_text(encoding="utf-8")
    assert '<script type="module" src="js/app.js"></script>' in index


def test_only_the_dom_helper_turns_strings_into_markup() -> None:
    offenders = []
    for module in modules():
        for number, line in enumerate(module.read_text(encoding="utf-8").splitlines(), 1):
            if MARKUP_SINKS.search(line) and module != DOM:
                offenders.append(f"{module.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "write markup with render(element, html`…`) from dom.js:\n" + "\n".join(offenders)
    # And in dom.js, exactly once: render().
    sinks = MARKUP_SINKS.findall(DOM.read_text(encoding="utf-8"))
    assert sinks == [".innerHTML ="], sinks


def test_raw_markup_is_used_only_where_reviewed() -> None:
    calls = {}
    for module in modules():
        if module != DOM:
            count = len(re.findall(r"\braw\s*\(", module.read_text(encoding="utf-8")))
            if count:
                calls[str(module.relative_to(JS))] = count
    assert calls == REVIEWED_RAW_CALLS, "raw() bypasses escaping: review the new use, then list it here"


def test_pages_do_not_import_the_router() -> None:
    pages = sorted(PAGES.glob("*.js"))
    assert set(imports(ROUTER)) >= {page.resolve() for page in pages}, "the router imports every page"
    for page in pages:
        assert ROUTER.resolve() not in imports(page), f"{page.relative_to(ROOT)} imports the router"
    for module in modules():
        if module != ROUTER:
            assert ROUTER.resolve() not in imports(module), f"{module.relative_to(ROOT)} imports the router"


def test_the_imports_exist_and_form_no_cycle() -> None:
    graph = {module.resolve(): imports(module) for module in modules()}
    for module, targets in graph.items():
        for target in targets:
            assert target in graph, f"{module.relative_to(ROOT)} imports {target}, which does not exist"

    done: set[Path] = set()

    def visit(module: Path, path: list[Path]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            pytest.fail("import cycle: " + " → ".join(str(m.relative_to(JS)) for m in cycle))
        if module in done:
            return
        for target in graph[module]:
            visit(target, [*path, module])
        done.add(module)

    for module in graph:
        visit(module, [])


def test_translations_hold_no_markup() -> None:
    # t() output is escaped like any other text, so markup in a translation would show as text.
    source = (JS / "i18n.js").read_text(encoding="utf-8")
    texts = source[source.index("const TEXTS = {") : source.index("\n};\n")]
    assert not re.findall(r".*[<>&].*", texts), "build markup in the page template, not in the translation"


ESCAPING_CHECKS = r"""
globalThis.localStorage = { getItem: () => "en" };
const { html, raw, render, showError } = await import(process.argv[1]);
const { t } = await import(process.argv[2]);
const rendered = (fragment) => { const element = {}; render(element, fragment); return element.innerHTML; };
const results = {
  text: String(html`<p>${"<img onerror=x>"}</p>`),
  attribute: String(html`<a title="${`"' onmouseover="x`}">&amp;</a>`),
  ampersand: String(html`<p>${"&lt; is <"}</p>`),
  raw: String(html`<p>${raw("<b>constant</b>")}</p>`),
  nested: String(html`<ul>${html`<li>${"a & b"}</li>`}</ul>`),
  array: String(html`<ul>${["<x>", html`<li>${"y"}</li>`, [html`<i>z</i>`, 1]]}</ul>`),
  nothing: String(html`<p>${null}${undefined}${false}${0}${""}</p>`),
  translation: String(html`<p>${t("message.testsent", { to: "<b>x</b>" })}</p>`),
  render: rendered(html`<td>${"<script>alert(1)</script>"}</td>`),
  render_string: rendered("<b>not markup</b>"),
  render_list: rendered([html`<li>1</li>`, "<li>2</li>"]),
  error: (() => { const element = {}; showError(element, new Error("<img src=x onerror=alert(1)>")); return element.innerHTML; })(),
};
console.log(JSON.stringify(results));
"""

ESCAPING_EXPECTED = {
    "text": "<p>&lt;img onerror=x&gt;</p>",
    "attribute": '<a title="&quot;&#39; onmouseover=&quot;x">&amp;</a>',
    "ampersand": "<p>&amp;lt; is &lt;</p>",
    "raw": "<p><b>constant</b></p>",
    "nested": "<ul><li>a &amp; b</li></ul>",
    "array": "<ul>&lt;x&gt;<li>y</li><i>z</i>1</ul>",
    "nothing": "<p>0</p>",
    "translation": "<p>Test sent to &lt;b&gt;x&lt;/b&gt;.</p>",
    "render": "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>",
    "render_string": "&lt;b&gt;not markup&lt;/b&gt;",
    "render_list": "<li>1</li>&lt;li&gt;2&lt;/li&gt;",
    "error": '<p class="error" role="alert">&lt;img src=x onerror=alert(1)&gt;</p>',
}


def test_the_html_tag_escapes_every_interpolation() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: scripts/bootstrap installs it")
    run = subprocess.run(
        [node, "--input-type=module", "-e", ESCAPING_CHECKS, DOM.as_uri(), (JS / "i18n.js").as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)
    assert results == ESCAPING_EXPECTED


async def test_the_local_server_publishes_what_the_deployment_does() -> None:
    import httpx

    from functions.app import create_app

    app = create_app(serve_web=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sendpy.test") as web:
        for published in ("/", "/index.html", "/styles.css", "/js/app.js", "/vendor/squire.js"):
            assert (await web.get(published)).status_code == 200, published
        for private in ("/package.json", "/package-lock.json", "/build.mjs", "/node_modules/axe-core/package.json",
                        "/./package.json", "/js/../package.json"):
            assert (await web.get(private)).status_code == 404, private

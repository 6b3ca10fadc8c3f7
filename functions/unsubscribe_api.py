"""The public unsubscribe page (no login): GET shows a confirmation, POST unsubscribes.

POST is also what mail clients send for RFC 8058 one-click unsubscribe
(`List-Unsubscribe=One-Click`). GET never changes anything: link scanners follow links.
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from functions import resources
from functions.errors import language
from shared import unsubscribe
from shared.settings import get_settings

TEXTS = {
    "en": {
        "title": "Unsubscribe",
        "ask": "Stop receiving these emails?",
        "button": "Unsubscribe",
        "done": "Done: {email} will not receive emails from this sender any more.",
        "invalid": "This unsubscribe link is not valid.",
    },
    "ru": {
        "title": "Отписка",
        "ask": "Больше не получать эти письма?",
        "button": "Отписаться",
        "done": "Готово: на {email} больше не будут приходить письма от этого отправителя.",
        "invalid": "Ссылка для отписки недействительна.",
    },
}


def _page(lang: str, body: str, status: int = 200) -> HTMLResponse:
    texts = TEXTS[lang]
    page = f"""<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{texts['title']}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1a1a1a}}
button{{font:inherit;padding:.6rem 1.2rem;border:0;border-radius:6px;background:#1f5eff;color:#fff;cursor:pointer}}
</style></head><body>{body}</body></html>"""
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store",
                                                         "X-Robots-Tag": "noindex"})


def _target(request: Request) -> tuple[str, unsubscribe.Target | None]:
    token = str(request.path_params["token"])
    return token, unsubscribe.read_token(unsubscribe.signing_key(get_settings()), token)


async def confirm_page(request: Request) -> Response:
    lang = language(request)
    token, target = _target(request)
    if target is None:
        return _page(lang, f"<p>{TEXTS[lang]['invalid']}</p>", 404)
    texts = TEXTS[lang]
    return _page(lang, f"""<h1>{texts['title']}</h1><p>{texts['ask']}</p>
<form method="post" action="/u/{html.escape(token)}"><button type="submit">{texts['button']}</button></form>""")


async def unsubscribe_now(request: Request) -> Response:
    lang = language(request)
    _, target = _target(request)
    if target is None:
        return _page(lang, f"<p>{TEXTS[lang]['invalid']}</p>", 404)
    pool = await resources.db()
    async with pool.acquire() as conn:
        email = await unsubscribe.unsubscribe(conn, target)
    if email is None:
        return _page(lang, f"<p>{TEXTS[lang]['invalid']}</p>", 404)
    return _page(lang, f"<p>{html.escape(TEXTS[lang]['done'].format(email=email))}</p>")

"""Headers every answer carries, so a deployment without CloudFront (or the local stack) is
covered too: a Content Security Policy, no framing (clickjacking), no MIME sniffing, no referrer
(unsubscribe links carry their token in the path).

CloudFront sends the same headers (infra/terraform/modules/cdn, checked equal to these by
tests/test_infra.py); tests/test_csp_e2e.py walks the UI in Chromium and fails on any violation.

- The UI (web/) is files from this origin only: no inline scripts or styles, no eval, no CDN.
  The only inline style the app serves is the unsubscribe page's <style>, allowed by its hash.
- Contact files go from the browser straight to the uploads bucket (a presigned POST): that
  origin, and nothing else, is added to connect-src.
- The campaign preview shows the user's own email HTML, which needs inline CSS and remote images.
  It is drawn into web/preview.html, a document with its own policy (PREVIEW_CONTENT_SECURITY_POLICY:
  no scripts at all, inline CSS and images from anywhere, framed by this origin only), so the
  app's policy stays strict. A srcdoc frame would not do: it inherits the app's policy.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.settings import Settings, get_settings

# sha256 of the <style> element of the unsubscribe page (functions/unsubscribe_api.py);
# tests/test_csp_e2e.py recomputes it from the page, so a changed style fails there first.
UNSUBSCRIBE_STYLE_HASH = "'sha256-xPbTzzMysJesYjhce+rA3/XojT3rtQ6jq2tY20wmyI0='"

PREVIEW_PATH = "/preview.html"


def content_security_policy(upload_origins: tuple[str, ...]) -> str:
    """The policy of every page and answer but the preview document."""
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        f"style-src 'self' {UNSUBSCRIBE_STYLE_HASH}",
        # The editor shows the person's own message, whose images are on their servers (https only:
        # the editor refuses plain-http image addresses).
        "img-src 'self' data: https:",
        " ".join(["connect-src 'self'", *upload_origins]),
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


# The preview frame (web/preview.html): the user's email as a mail client would show it — inline
# CSS, images and web fonts from anywhere — and never a script (`sandbox` without allow-scripts
# also holds if the page is opened on its own), a form or a plugin. Only this origin may frame it.
PREVIEW_CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "img-src https: http: data:",
    "style-src 'unsafe-inline'",
    "font-src https: data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'self'",
    # Links in the email open in a new tab of their own (noopener), never inside the preview.
    "sandbox allow-same-origin allow-popups allow-popups-to-escape-sandbox",
])


def upload_origins(settings: Settings) -> tuple[str, ...]:
    """Where the browser posts contact files: the origin of the presigned POST's URL
    (shared/storage.py). AWS: the bucket's global name, and its regional name for the redirect S3
    may answer while a new bucket's DNS spreads. Elsewhere (moto, LocalStack): the endpoint."""
    if settings.s3_endpoint_url:
        parts = urlsplit(settings.s3_endpoint_url)
        return (f"{parts.scheme}://{parts.netloc}",)
    bucket = settings.s3_bucket_uploads
    return (f"https://{bucket}.s3.amazonaws.com", f"https://{bucket}.s3.{settings.aws_region}.amazonaws.com")


def headers(settings: Settings) -> dict[str, list[tuple[bytes, bytes]]]:
    """The headers of ordinary answers ("app") and of the preview document ("preview")."""
    common = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
    return {
        "app": [*common, (b"x-frame-options", b"DENY"),
                (b"content-security-policy", content_security_policy(upload_origins(settings)).encode())],
        "preview": [*common, (b"x-frame-options", b"SAMEORIGIN"),
                    (b"content-security-policy", PREVIEW_CONTENT_SECURITY_POLICY.encode())],
    }


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._headers: dict[str, list[tuple[bytes, bytes]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._headers is None:
            self._headers = headers(get_settings())
        extra = self._headers["preview" if scope["path"] == PREVIEW_PATH else "app"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *((name, value) for name, value in extra if name not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)

"""Security headers on every response (pages, static files, API answers, errors).

The dashboard runs no inline script: every page loads its code from /static (frontend/static/js)
and plotly.js from /static/vendor, so `script-src 'self'` holds. Only the Swagger UI page (/docs)
carries an inline script of its own (FastAPI writes it); `with_inline_scripts_allowed` gives that
one response a policy naming the script's hash, so nothing else may run inline there either.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _policy(script_src: str, style_src: str) -> str:
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src {script_src}",
            f"style-src {style_src}",
            # Plotly draws heat maps as `data:` images; the shell's favicon is `data:,`; a chart's
            # PNG export (Plotly.downloadImage) rasterises its SVG through a `blob:` image the
            # page itself made.
            "img-src 'self' data: blob:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


# plotly.js styles its figures through inline `style` attributes set from markup it builds (the
# modebar, legends, hover labels), and injects a <style> element for its own CSS: without
# 'unsafe-inline' for styles every chart logs violations and loses its layout. Inline styles cannot
# run code, and scripts stay 'self' only, so this relaxation does not reopen script injection.
CONTENT_SECURITY_POLICY = _policy(script_src="'self'", style_src="'self' 'unsafe-inline'")

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate CSP level 2
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


class SecurityHeaders:
    """ASGI middleware: adds `HEADERS` to each response, keeping a Content-Security-Policy the
    route set itself (/docs). Pure ASGI, so streamed responses (the live stream) pass untouched."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.raw = [(name.lower().encode(), value.encode()) for name, value in HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((name, value) for name, value in self.raw if name not in present),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def with_inline_scripts_allowed(page: HTMLResponse) -> HTMLResponse:
    """`page` with a policy that lets exactly its own inline scripts run (by SHA-256 hash)."""
    html = bytes(page.body).decode()
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    page.headers["Content-Security-Policy"] = _policy(
        script_src=f"'self' {hashes}", style_src="'self' 'unsafe-inline'"
    )
    return page

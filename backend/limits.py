"""A bound on request bodies, enforced while they are read (setting `max_body_bytes`).

A body that declares a larger Content-Length is answered 413 before a byte of it is read; one
that does not (chunked transfer) is read only until it passes the limit. Below the limit the body
is held (at most `max_bytes`) and handed to the app as it arrived, so no route, however it reads
its body, can be made to read more.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self.check_declared_length(Headers(scope=scope))
            body = await self.read_body(receive)
        except BodyTooLarge:
            await self.too_large()(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    def check_declared_length(self, headers: Headers) -> None:
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise BodyTooLarge

    async def read_body(self, receive: Receive) -> Message:
        """The whole body as one message, or BodyTooLarge as soon as it passes the limit (a
        disconnect is passed on as it is)."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

    def too_large(self) -> JSONResponse:
        return JSONResponse(
            {
                "detail": f"the request body is larger than this server takes: at most "
                f"{self.max_bytes:,} bytes (setting PCM_MAX_BODY_BYTES)"
            },
            status_code=413,
        )


def _replay(first: Message, receive: Receive) -> Receive:
    """A receive that gives the body already read, then defers to the real one (which tells of a
    disconnect, as a streaming response needs)."""
    pending = [first]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed

"""Request bodies: refuse ones over the size limit (413) and ones that are not UTF-8 (400) before any handler runs."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


async def send_error(send: Send, status: int, code: str, message: str) -> None:
    """Send a JSON error body in the API's one error shape."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    """Buffers each request body up to a limit, checks it is UTF-8, and replays it to the app."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body larger than {self.max_bytes:,} bytes; send fewer events or items per request"
        declared = dict(scope["headers"]).get(b"content-length")
        # Refuse on the declared length without reading: a client must not make us buffer a huge body.
        if declared is not None and not declared.isdigit():
            await send_error(send, 400, "bad_content_length", "Content-Length must be a whole number of bytes")
            return
        if declared is not None and int(declared) > self.max_bytes:
            await send_error(send, 413, "body_too_large", too_large)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await send_error(send, 413, "body_too_large", too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as error:
            await send_error(send, 400, "not_utf8", f"request body is not UTF-8 (byte 0x{body[error.start]:02x} at offset {error.start})")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

"""An ASGI guard for the upload routes: refuse oversized bodies before they are read.

Django's ASGI handler reads a whole request body (to a temporary file) before any view runs,
so a size check in the view comes after the disk has been filled. This wrapper answers 413 at
once when ``Content-Length`` is over the upload limit, and stops reading (the request is
aborted, nothing is stored) when a body without a length grows past it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PREFIX = "/api/v1/uploads"


class UploadBodyLimit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or not str(scope.get("path", "")).startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        from django.conf import settings

        limit = int(settings.UPLOAD_MAX_BYTES) + 1024 * 1024
        length = _content_length(scope)
        if length is not None and length > limit:
            await _too_large(send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send) -> None:
    body = json.dumps(
        {
            "error": "payload_too_large",
            "message": "ファイルが大きすぎます (アップロードの上限を超えています)。",
            "param": None,
        },
        ensure_ascii=False,
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                (b"tus-resumable", b"1.0.0"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""WebSocket ``/ws/events/``: live call events for the people allowed to see each call.

Authentication: the browser session (cookie; the Origin must be this site), or
``Authorization: Bearer <API token>`` for programs. Tokens in the URL (``?token=``) are refused:
URLs end up in logs and browser history. Connections without a valid identity are accepted and
closed at once with code 4401 (so that clients can tell "log in again" from a network error);
a browser connection from another site is closed with 4403.

Messages to the client: ``{"type": "call.ended", "call": {...}}`` (see ``live.payload_of``).
The connection is re-checked every ``LIVE_REVALIDATE_SECONDS`` (default 60): a logged-out
session, a revoked token or a deactivated user closes it with 4401.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from callvault.apps.web import live, screenpop

log = logging.getLogger("callvault.live")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
ACCESS_SETTLE = 0.5  # seconds: access changes come in bursts (a team set up, an import)


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


def _same_origin(scope: dict[str, Any]) -> bool:
    """A browser's Origin must be this site (the Host it connected to, or a trusted origin)."""
    origin = _header(scope, b"origin")
    if not origin:
        return True  # not a browser: cross-site WebSocket hijacking needs one
    if origin in getattr(settings, "CSRF_TRUSTED_ORIGINS", []):
        return True
    host = _header(scope, b"host").lower()
    return bool(host) and urlsplit(origin).netloc.lower() == host


def _token_user(token: str) -> tuple[Any, int] | None:
    from callvault.apps.accounts.models import ApiToken, hash_token

    if not token or len(token) > 200:
        return None
    row = (
        ApiToken.objects.select_related("user")
        .filter(token_hash=hash_token(token), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if row is None:
        return None
    ApiToken.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
    return row.user, row.pk


def _still_valid(user_id: int, session_key: str | None, token_id: int | None) -> Any:
    """The user again, if the session or token that opened the connection still holds."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return None
    if token_id is not None:
        from callvault.apps.accounts.models import ApiToken

        ok = ApiToken.objects.filter(pk=token_id, user=user, revoked_at__isnull=True).exists()
        return user if ok else None
    if session_key:
        from importlib import import_module

        from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
        from django.utils.crypto import constant_time_compare

        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)
        if str(store.get(SESSION_KEY, "")) != str(user.pk):
            return None
        if not constant_time_compare(store.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()):
            return None
        return user
    return None


class EventsConsumer(AsyncWebsocketConsumer):
    user: Any = None
    audience: live.Audience | None = None
    session_key: str | None = None
    token_id: int | None = None
    joined = False
    tailing = False
    watchdog: asyncio.Task[None] | None = None
    stale = False  # teams, memberships, lines or roles changed since the audience was read
    _tasks: set[asyncio.Task[Any]]

    async def connect(self) -> None:
        self._tasks = set()
        code = await self._authenticate()
        if code:
            await self.accept()  # accepted first so that the client sees the close code
            await self.close(code=code)
            return
        self.audience = await database_sync_to_async(live.Audience.of)(self.user)
        assert self.channel_layer is not None
        await self.channel_layer.group_add(live.GROUP, self.channel_name)
        self.joined = True
        if not live.redis_enabled():
            await live.tailer.acquire()
            self.tailing = True
        # Open only once subscribed: whatever happens after the client sees "open" reaches it.
        await self.accept()
        self.watchdog = asyncio.get_running_loop().create_task(self._revalidate())

    async def _authenticate(self) -> int:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        if any(k.lower() in ("token", "access_token", "api_key", "key") for k in query):
            return CLOSE_UNAUTHENTICATED  # never accept secrets in the URL
        authorization = _header(self.scope, b"authorization")
        if authorization:
            scheme, _sep, token = authorization.partition(" ")
            if scheme.lower() != "bearer":
                return CLOSE_UNAUTHENTICATED
            found = await database_sync_to_async(_token_user)(token.strip())
            if found is None:  # the token itself is never logged
                log.warning("x /ws/events/: refused an unknown or revoked API token from %s", self._client())
                return CLOSE_UNAUTHENTICATED
            log.info("< /ws/events/: API token %s of %s from %s", found[1], found[0], self._client())
            self.user, self.token_id = found
            return 0
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            return CLOSE_UNAUTHENTICATED
        if not _same_origin(self.scope):
            return CLOSE_FORBIDDEN_ORIGIN
        self.user = user
        session = self.scope.get("session")
        self.session_key = getattr(session, "session_key", None)
        return 0

    def _client(self) -> str:
        client = self.scope.get("client") or ("?", 0)
        return str(client[0])

    async def _revalidate(self) -> None:
        every = float(getattr(settings, "LIVE_REVALIDATE_SECONDS", 60))
        while True:
            await asyncio.sleep(every)
            if self.user is None or not await self._recheck():
                return

    async def disconnect(self, code: int) -> None:
        if self.watchdog is not None and self.watchdog is not asyncio.current_task():
            self.watchdog.cancel()
        if self.joined and self.channel_layer is not None:
            await self.channel_layer.group_discard(live.GROUP, self.channel_name)
            self.joined = False
        if self.tailing:
            live.tailer.release()
            self.tailing = False

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Clients only listen; a ``ping`` gets a ``pong`` so they can check the connection."""
        if text_data and text_data.strip().strip('"') == "ping":
            await self.send(text_data=json.dumps({"type": "pong"}))

    async def _recheck(self) -> bool:
        """Read the user's access again (an access change, or the periodic check); False: closed."""
        user = await database_sync_to_async(_still_valid)(self.user.pk, self.session_key, self.token_id)
        if user is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            self.user = self.audience = None
            return False
        self.user = user
        self.audience = await database_sync_to_async(live.Audience.of)(user)
        return True

    def _recheck_if_stale(self) -> None:
        if self.stale and self.user is not None:
            self.stale = False
            task = asyncio.get_running_loop().create_task(self._recheck())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def call_event(self, message: dict[str, Any]) -> None:
        if self.user is None or self.audience is None:
            return
        if message.get("kind") == screenpop.ACCESS_CHANGED:
            screenpop.cache.clear()
            # Re-read before the next call event, or in a moment: many changes, one re-read.
            if not self.stale:
                self.stale = True
                asyncio.get_running_loop().call_later(ACCESS_SETTLE, self._recheck_if_stale)
            return
        if self.stale:
            self.stale = False
            if not await self._recheck():
                return
        audience = self.audience
        assert audience is not None and self.user is not None
        if not audience.may_hear(message.get("team_id"), message.get("agent_id")):
            return
        event = str(message.get("event") or "")
        if not event:  # cannot share work without an event id: this socket alone
            text = await self._body(message, "", ("user", self.user.pk))
        else:  # once per event and access group: every socket of the group sends the same text
            group = audience.group
            text = await screenpop.cache.get(
                ("body", event, group), lambda: self._body(message, event, group)
            )
        if text is not None:
            await self.send(text_data=text)

    async def _body(self, message: dict[str, Any], event: str, group: Any) -> str | None:
        """The message as this socket's access group receives it (None: the call is not theirs)."""
        call = message.get("payload") or {}
        call_id = str(message.get("call_id"))
        if not await screenpop.visible(event, group, self.user, call_id, bool(call.get("early"))):
            return None
        body: dict[str, Any] = {"type": message.get("kind"), "call": call}
        card = await screenpop.card(event, group, self.user, str(message.get("kind")), call)
        if card is not None:
            body["card"] = card
        return json.dumps(body, ensure_ascii=False, default=str)

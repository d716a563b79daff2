"""WebSocket routes: live call events at /ws/events/ (session cookie or bearer token)."""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from django.urls import path

from callvault.apps.web.consumers import EventsConsumer

websocket_urlpatterns: list[Any] = [
    path("ws/events/", AuthMiddlewareStack(EventsConsumer.as_asgi())),
]

"""ASGI entry point: HTTP through Django, WebSockets (/ws/events/) through Channels."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callvault.settings")

from callvault.http import get_asgi_application  # Django's stack, one thread hop per request

django_asgi = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from callvault.apps.uploads.asgi import UploadBodyLimit  # noqa: E402
from callvault.apps.web.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": UploadBodyLimit(django_asgi),  # uploads: 413 before an oversized body is read
        "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)

"""ASGI entry point: HTTP through Django (WebSockets join in the web app issue)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callvault.settings")

from django.core.asgi import get_asgi_application

application = get_asgi_application()

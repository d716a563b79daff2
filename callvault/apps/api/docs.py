"""The API reference page (Swagger UI) served entirely from this installation.

Offices often run callvault without internet access, so the page must not load anything from
a CDN: the Swagger UI files that ship inside the django-ninja package are served by
:func:`docs_asset`, a fixed list of file names (nothing else can be requested).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ninja
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET
from ninja.openapi.docs import DocsBase

if TYPE_CHECKING:
    from ninja import NinjaAPI

ASSET_DIR = Path(ninja.__file__).parent / "static" / "ninja"
ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-init.js": "text/javascript",
    "favicon.png": "image/png",
}


class OfflineSwagger(DocsBase):
    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs: Any) -> HttpResponse:
        config = {
            "url": self.get_openapi_url(api, kwargs),
            "layout": "BaseLayout",
            "deepLinking": True,
            "persistAuthorization": False,
        }
        return render(
            request,
            "api/docs.html",
            {"swagger_settings": json.dumps(config), "title": api.title},
        )


@require_GET
def docs_asset(request: HttpRequest, name: str) -> HttpResponse:
    if name not in ASSETS:
        raise Http404(name)
    response = FileResponse((ASSET_DIR / name).open("rb"), content_type=ASSETS[name])
    response["Cache-Control"] = "public, max-age=86400"
    return response


def asset_url(name: str) -> str:
    return reverse("api:docs_asset", kwargs={"name": name})

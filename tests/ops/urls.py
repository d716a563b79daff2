"""Test URLconf: the ops routes as the lead will include them, and a failing view.

The site's own URLconf is left out on purpose: other areas are being built in
parallel, and these tests must not depend on their state.
"""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a view that fails")


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("plain")


urlpatterns = [
    path("", include("callvault.apps.ops.urls")),
    path("test-boom", boom, name="test-boom"),
    path("test-plain", plain),
]

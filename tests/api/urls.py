"""The API mounted exactly as in ``callvault/urls.py``, without the other UI areas.

Tests of the API use this URLconf (``pytest.mark.urls``) so that they exercise the API alone.
"""

from django.urls import include, path

urlpatterns = [path("api/v1/", include("callvault.apps.api.urls"))]

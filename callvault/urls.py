from django.urls import include, path

urlpatterns = [
    path("api/v1/", include("callvault.apps.api.urls")),
    path("", include("callvault.apps.web.urls")),
]

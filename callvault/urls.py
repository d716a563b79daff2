from django.urls import include, path

urlpatterns = [
    path("", include("callvault.apps.web.urls")),
]

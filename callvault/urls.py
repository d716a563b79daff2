from django.urls import include, path

urlpatterns = [
    path("api/v1/", include("callvault.apps.api.urls")),
    path("settings/webhooks/", include("callvault.apps.webhooks.urls")),
    path("customers/", include("callvault.apps.customers.urls")),
    path("", include("callvault.apps.ops.urls")),
    path("", include("callvault.apps.web.urls")),
]

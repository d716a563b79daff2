from django.urls import include, path

urlpatterns = [
    path("api/v1/", include("callvault.apps.api.urls")),
    path("settings/webhooks/", include("callvault.apps.webhooks.urls")),
    path("settings/pbx/", include("callvault.apps.pbx.urls")),
    path("checks/recordings/", include("callvault.apps.completeness.urls")),
    path("customers/", include("callvault.apps.customers.urls")),
    path("", include("callvault.apps.ops.urls")),
    path("", include("callvault.apps.web.urls")),
]

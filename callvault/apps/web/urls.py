from django.urls import path

from callvault.apps.web import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
]

from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "callvault.apps.customers"
    label = "customers"
    verbose_name = "顧客"

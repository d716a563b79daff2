from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "callvault.apps.audit"
    label = "audit"
    verbose_name = "監査ログ"

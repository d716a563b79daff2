from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "callvault.apps.accounts"
    label = "accounts"
    verbose_name = "アカウント"

    def ready(self) -> None:
        from callvault.apps.accounts import signals

        signals.connect()

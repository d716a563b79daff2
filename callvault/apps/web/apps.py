from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "callvault.apps.web"
    label = "web"
    verbose_name = "Web"

    def ready(self) -> None:
        from callvault.apps.web import screenpop

        screenpop.connect_signals()
        screenpop.warm_up()

        from django.db.models.signals import post_migrate

        post_migrate.connect(_repair_number_index, dispatch_uid="callvault-web-number-index")


def _repair_number_index(sender: AppConfig, using: str = "default", **kwargs: object) -> None:
    """A migration that rebuilt ``calls_call`` on SQLite took the number index's triggers with it."""
    if sender.label == "calls":
        from callvault.apps.web.calls_list import repair_number_index

        repair_number_index(using)

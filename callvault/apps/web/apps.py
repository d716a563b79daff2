from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "callvault.apps.web"
    label = "web"
    verbose_name = "Web"

    def ready(self) -> None:
        from callvault.apps.web import screenpop

        screenpop.connect_signals()
        screenpop.warm_up()

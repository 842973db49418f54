from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ApiConfig(AppConfig):
    name = "apps.api"
    label = "api"
    verbose_name = _("Host API")

    def ready(self) -> None:
        from . import schema  # noqa: F401  (registers the OpenAPI auth extension)

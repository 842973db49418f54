from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TrustConfig(AppConfig):
    name = "apps.trust"
    verbose_name = _("Trust and personal data")

    def ready(self) -> None:
        # The rule settings' cache listens for their changes (apps.trust.rules).
        from . import rules  # noqa: F401

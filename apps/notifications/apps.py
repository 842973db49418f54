from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NotificationsConfig(AppConfig):
    # Not "messages": that label is django.contrib.messages'.
    name = "apps.notifications"
    label = "notifications"
    verbose_name = _("Participant messages")

from __future__ import annotations

import hashlib

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def hash_key(key: str) -> str:
    # The key carries 192 random bits, so a plain SHA-256 cannot be brute-forced and
    # lets authentication be one indexed lookup.
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKey(models.Model):
    """A host application's key. Only its hash is stored; the key is shown once."""

    name = models.CharField(max_length=100, help_text=_("Who uses this key, e.g. 'shop backend'."))
    prefix = models.CharField(max_length=12, editable=False, help_text=_("To recognise a key."))
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("API key")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

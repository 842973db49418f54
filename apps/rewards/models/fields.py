"""Fields the reward models share."""

from __future__ import annotations

from typing import Any

from django.db import models

from apps.common.money import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS


def amount_field(**kwargs: Any) -> models.DecimalField:
    """A money amount: the digits and decimal places every amount of Fission has."""
    return models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, **kwargs
    )

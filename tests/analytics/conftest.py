from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client


@pytest.fixture
def operator(db: Any) -> Any:
    """Olivia: marketing staff who may view campaigns and receives K-factor alerts."""
    user = get_user_model().objects.create_user("olivia", "olivia@example.com", "pw", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_campaign"),
        Permission.objects.get(codename="receive_k_alerts"),
    )
    return user


@pytest.fixture
def operator_client(operator: Any) -> Client:
    client = Client()
    client.force_login(operator)
    return client

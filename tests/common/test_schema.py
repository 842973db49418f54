"""The database has every constraint and index the models declare: a migration that
alters a field must not take an index of another name with it (Django's AlterField to
db_index=False drops every single-column index on the column, partial unique ones too)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import connection

pytestmark = pytest.mark.django_db

APPS = {"analytics", "api", "campaigns", "exports", "notifications", "referrals", "rewards"}
APPS |= {"trust", "landing", "common"}


def test_every_declared_constraint_and_index_exists():
    missing = []
    with connection.cursor() as cursor:
        for model in apps.get_models():
            if model._meta.app_label not in APPS or not model._meta.managed:
                continue
            if model._meta.proxy:
                continue
            table = model._meta.db_table
            present = set(connection.introspection.get_constraints(cursor, table))
            declared = [c.name for c in model._meta.constraints]
            declared += [i.name for i in model._meta.indexes]
            missing += [f"{table}.{name}" for name in declared if name not in present]
    assert missing == []

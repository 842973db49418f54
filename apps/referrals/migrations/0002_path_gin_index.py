"""A GIN index on the participant path as an array of ancestor ids (PostgreSQL only).

It serves `descendants()`: "everyone whose path contains X" is one index scan at any
depth. A B-tree on the path text would do prefix matches too, but its entries are capped
at about 2.7 kB, which a chain a few hundred deep exceeds. SQLite (development) goes
without: there the subtree query is a prefix match over the campaign's rows.
"""

from django.db import migrations

from apps.referrals.models import PATH_ARRAY_SQL

INDEX = "participant_path_gin"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON referrals_participant USING gin (({PATH_ARRAY_SQL}))"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("referrals", "0001_initial")]
    operations = [migrations.RunPython(create, drop, elidable=False)]

"""The "finance" group: may read campaigns, participants and rewards, export reports,
reconcile, make payout batches and mark them paid; may not edit campaigns or rewards.
Operators (staff without it) cannot mark anything paid. Add people to it in the admin
(Authentication → Groups, or a user's page)."""

from django.db import migrations

GROUP = "finance"
PERMISSIONS = {
    "campaigns": ["view_campaign"],
    "referrals": ["view_participant"],
    "rewards": [
        "view_reward",
        "view_conversion",
        "view_payoutbatch",
        "add_payoutbatch",
        "change_payoutbatch",
        "pay_payoutbatch",
        "view_financelog",
    ],
    "exports": ["view_exportjob", "export_rewards"],
}


def _ensure_permissions(apps):
    # Permissions are normally made after all migrations (post_migrate); make them now,
    # for the models of these apps as they stand at this migration.
    from django.contrib.auth.management import create_permissions

    for label in PERMISSIONS:
        app_config = apps.get_app_config(label)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None


def create_group(apps, schema_editor):
    _ensure_permissions(apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    for label, codenames in PERMISSIONS.items():
        found = Permission.objects.filter(content_type__app_label=label, codename__in=codenames)
        missing = set(codenames) - set(found.values_list("codename", flat=True))
        if missing:
            raise RuntimeError(f"permissions not found: {label}.{sorted(missing)}")
        group.permissions.add(*found)


def remove_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("campaigns", "0001_initial"),
        ("referrals", "0001_initial"),
        ("rewards", "0004_finance_triggers"),
        ("exports", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]

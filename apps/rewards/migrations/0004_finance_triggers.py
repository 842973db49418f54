"""On PostgreSQL the database keeps two promises of payouts: the finance log is
append-only, and a paid (or cancelled) payout batch never changes. SQLite (development)
relies on the code alone."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION rewards_financelog_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the finance log is append-only (rewards_financelog %)', OLD.id
        USING ERRCODE = 'integrity_constraint_violation';
END $$ LANGUAGE plpgsql;

CREATE TRIGGER rewards_financelog_append_only
    BEFORE UPDATE OR DELETE ON rewards_financelog
    FOR EACH ROW EXECUTE FUNCTION rewards_financelog_append_only();

CREATE OR REPLACE FUNCTION rewards_payoutbatch_closed_is_final() RETURNS trigger AS $$
BEGIN
    IF OLD.status IN ('paid', 'cancelled') THEN
        RAISE EXCEPTION 'payout batch % is %: it never changes', OLD.id, OLD.status
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER rewards_payoutbatch_closed_is_final
    BEFORE UPDATE OR DELETE ON rewards_payoutbatch
    FOR EACH ROW EXECUTE FUNCTION rewards_payoutbatch_closed_is_final();
"""

DROP = """
DROP TRIGGER IF EXISTS rewards_payoutbatch_closed_is_final ON rewards_payoutbatch;
DROP FUNCTION IF EXISTS rewards_payoutbatch_closed_is_final();
DROP TRIGGER IF EXISTS rewards_financelog_append_only ON rewards_financelog;
DROP FUNCTION IF EXISTS rewards_financelog_append_only();
"""


def _run(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("rewards", "0003_payouts")]

    operations = [migrations.RunPython(_run(CREATE), _run(DROP))]

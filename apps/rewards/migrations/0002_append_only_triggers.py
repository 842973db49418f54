"""On PostgreSQL the database itself keeps two promises of the ledger: a reward's history
is append-only, and a paid reward never changes (a reversal is a new, negative entry).
SQLite (development) relies on the code alone."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION rewards_transition_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'reward history is append-only (rewards_rewardtransition %)', OLD.id
        USING ERRCODE = 'integrity_constraint_violation';
END $$ LANGUAGE plpgsql;

CREATE TRIGGER rewards_transition_append_only
    BEFORE UPDATE OR DELETE ON rewards_rewardtransition
    FOR EACH ROW EXECUTE FUNCTION rewards_transition_append_only();

CREATE OR REPLACE FUNCTION rewards_paid_is_final() RETURNS trigger AS $$
BEGIN
    IF OLD.state = 'paid' THEN
        RAISE EXCEPTION 'reward % is paid: it never changes', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER rewards_paid_is_final
    BEFORE UPDATE OR DELETE ON rewards_reward
    FOR EACH ROW EXECUTE FUNCTION rewards_paid_is_final();
"""

DROP = """
DROP TRIGGER IF EXISTS rewards_paid_is_final ON rewards_reward;
DROP FUNCTION IF EXISTS rewards_paid_is_final();
DROP TRIGGER IF EXISTS rewards_transition_append_only ON rewards_rewardtransition;
DROP FUNCTION IF EXISTS rewards_transition_append_only();
"""


def _run(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("rewards", "0001_initial")]

    operations = [migrations.RunPython(_run(CREATE), _run(DROP))]

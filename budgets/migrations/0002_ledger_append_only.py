"""The database itself refuses to update or delete ledger entries, whatever code runs against it."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION budgets_ledgerentry_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER budgets_ledgerentry_append_only
    BEFORE UPDATE OR DELETE ON budgets_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION budgets_ledgerentry_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS budgets_ledgerentry_append_only ON budgets_ledgerentry;
DROP FUNCTION IF EXISTS budgets_ledgerentry_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("budgets", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

"""Full-text search over span inputs and outputs, in any language: a trigram GIN index on
(tenant_id, search_text), so ILIKE '%…%' is served per tenant (btree_gin puts the tenant in the
GIN index)."""

from django.contrib.postgres.operations import BtreeGinExtension, TrigramExtension
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("traces", "0001_initial")]

    operations = [
        TrigramExtension(),
        BtreeGinExtension(),
        migrations.RunSQL(
            "CREATE INDEX span_search_trgm ON traces_span USING gin (tenant_id, search_text gin_trgm_ops)",
            "DROP INDEX IF EXISTS span_search_trgm",
        ),
    ]

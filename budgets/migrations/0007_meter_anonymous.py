from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("budgets", "0006_on_exceed_require_approval"),
    ]

    operations = [
        migrations.AddField(
            model_name="budget",
            name="meter_anonymous",
            field=models.BooleanField(
                default=False,
                help_text="A per-end-user or per-session budget also counts calls that name none, together in one bucket.",
            ),
        ),
    ]

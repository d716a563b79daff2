from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("calls", "0006_capture_loss"),
    ]

    operations = [
        migrations.AddField(
            model_name="call",
            name="completeness",
            field=models.CharField(blank=True, db_index=True, default="", max_length=16),
        ),
        migrations.AddField(
            model_name="call",
            name="completeness_reasons",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name="call",
            name="completeness_codes",
            field=models.CharField(blank=True, default="", help_text=",short,one_sided,", max_length=100),
        ),
        migrations.AddField(
            model_name="call",
            name="completeness_checked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]

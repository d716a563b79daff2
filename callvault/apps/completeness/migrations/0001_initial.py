from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="OrphanFile",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("storage_key", models.CharField(max_length=512, unique=True)),
                ("bytes", models.BigIntegerField(default=0)),
                ("found_at", models.DateTimeField()),
                ("last_seen_at", models.DateTimeField()),
            ],
            options={"ordering": ["storage_key"]},
        ),
    ]

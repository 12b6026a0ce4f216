from django.db import migrations, models

from control_plane.core.ingestion import add_ingest_xid


class Migration(migrations.Migration):
    dependencies = [("asc_usage", "0002_spenddaily_usagerecord_rolled_up_and_more")]

    operations = [
        add_ingest_xid("asc_usage", "usagerecord"),
        migrations.AddIndex(
            model_name="usagerecord",
            index=models.Index(fields=["ingest_xid", "id"], name="usage_ingest_order"),
        ),
    ]

from django.db import migrations, models

from control_plane.core.ingestion import add_ingest_xid


class Migration(migrations.Migration):
    dependencies = [("asc_audit", "0001_initial")]

    operations = [
        add_ingest_xid("asc_audit", "auditrecord"),
        migrations.AddIndex(
            model_name="auditrecord",
            index=models.Index(fields=["ingest_xid", "id"], name="audit_ingest_order"),
        ),
    ]

from django.apps import AppConfig


class ConfigConfig(AppConfig):
    name = "control_plane.config"
    label = "asc_config"
    verbose_name = "Configuration as code"

    def ready(self) -> None:
        # Fleet stores each snapshot's document and rolls back through the importer, both here.
        from control_plane.config import rollback
        from control_plane.fleet.documents import set_document_io

        set_document_io(rollback.export, rollback.restore)

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "control_plane.audit"
    label = "asc_audit"
    verbose_name = "Audit"

from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "control_plane.tenancy"
    label = "asc_tenancy"
    verbose_name = "Tenancy"

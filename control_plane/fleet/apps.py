from django.apps import AppConfig


class FleetConfig(AppConfig):
    name = "control_plane.fleet"
    label = "asc_fleet"
    verbose_name = "Fleet"

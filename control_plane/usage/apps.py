from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "control_plane.usage"
    label = "asc_usage"
    verbose_name = "Usage"

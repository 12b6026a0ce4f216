from django.apps import AppConfig


class ConfigConfig(AppConfig):
    name = "control_plane.config"
    label = "asc_config"
    verbose_name = "Configuration as code"

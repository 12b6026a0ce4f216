from django.apps import AppConfig


class LimitsConfig(AppConfig):
    name = "control_plane.limits"
    label = "asc_limits"
    verbose_name = "Budgets and rate limits"

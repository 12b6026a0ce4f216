from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The app on top: pages and commands that span other apps (the tenant's page with every
    app's rows as inlines, the REST API's index, the demo data). No other app imports it."""

    name = "control_plane.console"
    label = "asc_console"
    verbose_name = "Console"

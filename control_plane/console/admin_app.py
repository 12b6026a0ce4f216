"""Django's admin app with the console's site as its default site (``site.ConsoleSite``), named
by a string: this module is imported while apps load, before any model may be."""

from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    default_site = "control_plane.console.site.ConsoleSite"

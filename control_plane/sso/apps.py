from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "control_plane.sso"
    label = "asc_sso"
    verbose_name = "Single sign-on"

    def ready(self) -> None:
        from django.contrib import admin

        from control_plane.sso import schema  # noqa: F401  # registers the bearer scheme

        admin.site.login_template = "admin/asc/login.html"  # adds the SSO button when on

from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "control_plane.catalog"
    label = "asc_catalog"
    verbose_name = "Catalog"

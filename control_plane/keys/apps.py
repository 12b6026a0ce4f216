from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "control_plane.keys"
    label = "asc_keys"
    verbose_name = "Keys"

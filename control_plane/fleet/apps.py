from django.apps import AppConfig


class FleetConfig(AppConfig):
    name = "control_plane.fleet"
    label = "asc_fleet"
    verbose_name = "Fleet"

    def ready(self) -> None:
        # Apps below fleet ask for publishes through core.publishing; fleet is who publishes.
        from control_plane.core.publishing import set_publisher
        from control_plane.fleet.services import enqueue_publish

        set_publisher(enqueue_publish)

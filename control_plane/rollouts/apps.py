from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    name = "control_plane.rollouts"
    label = "asc_rollouts"
    verbose_name = "Rollouts"

    def ready(self) -> None:
        # A change while a staged one is in flight is refused at the write, in any app.
        from control_plane.core.publishing import set_guard
        from control_plane.rollouts.services import refuse_second_change

        set_guard(refuse_second_change)

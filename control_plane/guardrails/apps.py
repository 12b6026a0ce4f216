from django.apps import AppConfig


class GuardrailsConfig(AppConfig):
    name = "control_plane.guardrails"
    label = "asc_guardrails"
    verbose_name = "Guardrails"

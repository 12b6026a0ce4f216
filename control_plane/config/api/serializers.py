from __future__ import annotations

from rest_framework import serializers


class ExportQuerySerializer(serializers.Serializer):  # type: ignore[type-arg]  # input only: no instance to type
    tenant = serializers.SlugField(required=False, help_text="only this tenant's part")


class ConfigImportSerializer(serializers.Serializer):  # type: ignore[type-arg]  # input only: no instance to type
    """``document``: the configuration as YAML text, or as the same structure in JSON."""

    document = serializers.JSONField()
    tenant = serializers.SlugField(required=False, help_text="import only this tenant's part")
    prune = serializers.BooleanField(default=False)
    dry_run = serializers.BooleanField(default=False)
    secrets = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        required=False,
        help_text="credentials' secrets by the name of their variable (secret_env); "
        "never stored in clear, never shown back",
    )


class LiteLLMImportSerializer(serializers.Serializer):  # type: ignore[type-arg]  # input only: no instance to type
    config = serializers.JSONField(help_text="LiteLLM's config.yaml, as YAML text or JSON")
    tenant = serializers.SlugField()
    dry_run = serializers.BooleanField(default=False)
    secrets = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        required=False,
        help_text="values of the os.environ/NAME references in the config, by NAME",
    )


class ChangeSerializer(serializers.Serializer):  # type: ignore[type-arg]  # describes a response for the schema: no instance
    op = serializers.ChoiceField(choices=["create", "update", "delete"])
    path = serializers.CharField()
    changed = serializers.ListField(child=serializers.CharField(), help_text="updated fields")


class ImportResultSerializer(serializers.Serializer):  # type: ignore[type-arg]  # describes a response for the schema: no instance
    applied = serializers.BooleanField()
    changes = ChangeSerializer(many=True)
    diff = serializers.CharField()
    warnings = serializers.ListField(child=serializers.CharField())

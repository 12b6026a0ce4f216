from rest_framework import serializers

from control_plane.usage.models import UsageRecord


class UsageRecordSerializer(serializers.ModelSerializer[UsageRecord]):
    class Meta:
        model = UsageRecord
        fields = [
            "request_id",
            "ts",
            "node_id",
            "tenant",
            "key",
            "route",
            "route_name",
            "model",
            "provider",
            "credential",
            "region",
            "subject",
            "prompt_tokens",
            "completion_tokens",
            "cached_prompt_tokens",
            "cost_nano_usd",
            "latency_ms",
            "ttft_ms",
            "snapshot_version",
            "status_code",
            "stream",
            "error_code",
            "fallbacks",
        ]
